import type { FastifyInstance } from 'fastify';

/**
 * Marks a plugin as not encapsulated, so its hooks, decorators and handlers apply to the whole app
 * (what `fastify-plugin` does, without depending on it).
 */
export function globalPlugin<Options extends Record<string, unknown> = Record<never, never>>(
  name: string,
  plugin: (app: FastifyInstance, options: Options) => Promise<void>,
) {
  const wrapped = plugin as typeof plugin & Record<symbol, unknown>;
  wrapped[Symbol.for('skip-override')] = true;
  wrapped[Symbol.for('fastify.display-name')] = name;
  return wrapped;
}
