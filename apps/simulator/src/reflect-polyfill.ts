// @peculiar/x509 depends on tsyringe, which refuses to load unless a Reflect metadata polyfill
// (`reflect-metadata` or similar) is installed. None is among this package's dependencies, so this
// module provides the small part of that API tsyringe uses. It must be imported before
// `@peculiar/x509`; it leaves an existing polyfill alone.

type MetadataMap = Map<unknown, unknown>;
type TargetMap = Map<PropertyKey | undefined, MetadataMap>;

interface ReflectMetadataApi {
  defineMetadata(key: unknown, value: unknown, target: object, property?: PropertyKey): void;
  getOwnMetadata(key: unknown, target: object, property?: PropertyKey): unknown;
  getMetadata(key: unknown, target: object, property?: PropertyKey): unknown;
  hasOwnMetadata(key: unknown, target: object, property?: PropertyKey): boolean;
  hasMetadata(key: unknown, target: object, property?: PropertyKey): boolean;
  metadata(key: unknown, value: unknown): (target: object, property?: PropertyKey) => void;
}

const reflect = Reflect as typeof Reflect & Partial<ReflectMetadataApi>;

if (typeof reflect.getMetadata !== 'function') {
  const store = new WeakMap<object, TargetMap>();

  const ownMap = (target: object, property: PropertyKey | undefined, create: boolean) => {
    let byProperty = store.get(target);
    if (!byProperty) {
      if (!create) return undefined;
      byProperty = new Map();
      store.set(target, byProperty);
    }
    let map = byProperty.get(property);
    if (!map && create) {
      map = new Map();
      byProperty.set(property, map);
    }
    return map;
  };

  const api: ReflectMetadataApi = {
    defineMetadata(key, value, target, property) {
      ownMap(target, property, true)!.set(key, value);
    },
    getOwnMetadata(key, target, property) {
      return ownMap(target, property, false)?.get(key);
    },
    hasOwnMetadata(key, target, property) {
      return ownMap(target, property, false)?.has(key) ?? false;
    },
    hasMetadata(key, target, property) {
      for (let t: object | null = target; t; t = Object.getPrototypeOf(t)) {
        if (api.hasOwnMetadata(key, t, property)) return true;
      }
      return false;
    },
    getMetadata(key, target, property) {
      for (let t: object | null = target; t; t = Object.getPrototypeOf(t)) {
        const map = ownMap(t, property, false);
        if (map?.has(key)) return map.get(key);
      }
      return undefined;
    },
    metadata(key, value) {
      return (target, property) => api.defineMetadata(key, value, target, property);
    },
  };

  Object.assign(Reflect, api);
}

export {};
