import type { FollowedChange } from './follower';

export interface CachedBundle {
  certificateId: string;
  tenantId: string;
  fingerprint: string;
  /** Leaf, intermediates, then the private key (PEM). */
  bundle: string;
}

const MAX_ENTRIES = 50_000;

/** `a.b.example.com` → `b.example.com` (the name a one-label wildcard `*.b.example.com` stands for). */
export function parentOf(name: string): string | undefined {
  const dot = name.indexOf('.');
  return dot > 0 ? name.slice(dot + 1) : undefined;
}

/**
 * The TLS route's in-process cache: answers (a bundle, or "none" for a 204) by token scope and server
 * name or certificate id. A change from the feed drops exactly the answers it could alter: those for
 * a name it lists, for every name under a wildcard it lists, and those for its certificate id. A
 * lookup that raced with a change (started before the change was seen, finished after) is not stored,
 * so the cache never keeps an answer older than the last change it saw.
 */
export class TlsCache {
  private readonly entries = new Map<string, CachedBundle | null>();
  /** server name → cache keys, and parent name → server names (for wildcard changes). */
  private readonly byName = new Map<string, Set<string>>();
  private readonly byParent = new Map<string, Set<string>>();
  private readonly byCertificate = new Map<string, Set<string>>();
  private generation = 0;

  get epoch(): number {
    return this.generation;
  }

  get size(): number {
    return this.entries.size;
  }

  getByName(scope: string, name: string): CachedBundle | null | undefined {
    return this.entries.get(`${scope}|n|${name}`);
  }

  getById(scope: string, id: string): CachedBundle | null | undefined {
    return this.entries.get(`${scope}|i|${id}`);
  }

  /** Stores an answer looked up at `epoch`, unless a change was seen meanwhile. */
  setByName(scope: string, name: string, value: CachedBundle | null, epoch: number): void {
    const key = this.store(`${scope}|n|${name}`, value, epoch);
    if (!key) return;
    addTo(this.byName, name, key);
    const parent = parentOf(name);
    if (parent) addTo(this.byParent, parent, name);
    if (value) addTo(this.byCertificate, value.certificateId, key);
  }

  setById(scope: string, id: string, value: CachedBundle | null, epoch: number): void {
    const key = this.store(`${scope}|i|${id}`, value, epoch);
    if (key) addTo(this.byCertificate, id, key);
  }

  /** The key stored, or undefined when a change came after `epoch` (the answer may be stale). */
  private store(key: string, value: CachedBundle | null, epoch: number): string | undefined {
    if (epoch !== this.generation) return undefined;
    this.makeRoom();
    this.entries.set(key, value);
    return key;
  }

  invalidate(changes: FollowedChange[]): void {
    this.generation++;
    for (const change of changes) {
      for (const key of take(this.byCertificate, change.certificateId)) this.entries.delete(key);
      for (const domain of change.domains) {
        if (domain.startsWith('*.')) {
          for (const name of take(this.byParent, domain.slice(2))) this.dropName(name);
        } else {
          this.dropName(domain);
        }
      }
    }
  }

  clear(): void {
    this.generation++;
    this.entries.clear();
    this.byName.clear();
    this.byParent.clear();
    this.byCertificate.clear();
  }

  private dropName(name: string): void {
    for (const key of take(this.byName, name)) this.entries.delete(key);
  }

  private makeRoom(): void {
    // Bounded: many distinct names (scanners probing random SNI) must not grow memory without end.
    if (this.entries.size >= MAX_ENTRIES) {
      const epoch = this.generation;
      this.clear();
      this.generation = epoch;
    }
  }
}

function addTo(map: Map<string, Set<string>>, key: string, value: string): void {
  let set = map.get(key);
  if (!set) {
    set = new Set();
    map.set(key, set);
  }
  set.add(value);
}

function take(map: Map<string, Set<string>>, key: string): Iterable<string> {
  const set = map.get(key);
  if (!set) return [];
  map.delete(key);
  return set;
}
