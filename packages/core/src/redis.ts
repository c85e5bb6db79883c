import { Cluster, type ClusterNode, Redis, type RedisOptions } from 'ioredis';

/**
 * `redis+cluster://host:port,host:port/` in REDIS_URL selects a Redis Cluster: the listed nodes are
 * the seeds (the client discovers the rest). Every key certq writes then needs one hash tag, so
 * BullMQ's multi-key scripts stay in one slot: REDIS_PREFIX defaults to `{certq}` there, and a
 * prefix without a `{tag}` is refused at start (see config.ts).
 */
export const REDIS_CLUSTER_SCHEME = 'redis+cluster:';

export function isRedisClusterUrl(url: string): boolean {
  return url.startsWith(`${REDIS_CLUSTER_SCHEME}//`);
}

/** The seed nodes and shared options of a `redis+cluster://[user:password@]h:p,h:p[/]` URL. */
export function parseRedisClusterUrl(url: string): {
  nodes: ClusterNode[];
  username?: string;
  password?: string;
} {
  if (!isRedisClusterUrl(url)) throw new Error('not a redis+cluster:// URL');
  let rest = url.slice(`${REDIS_CLUSTER_SCHEME}//`.length).replace(/\/$/, '');
  let username: string | undefined;
  let password: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const auth = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = auth.indexOf(':');
    username = decodeURIComponent(colon >= 0 ? auth.slice(0, colon) : auth) || undefined;
    password = colon >= 0 ? decodeURIComponent(auth.slice(colon + 1)) : undefined;
  }
  const nodes = rest.split(',').map((hostPort) => {
    const match = /^(\[[0-9a-fA-F:]+\]|[^:[\]]+):(\d{1,5})$/.exec(hostPort.trim());
    if (!match) throw new Error(`redis+cluster:// node "${hostPort}" is not host:port`);
    return { host: match[1]!.replace(/^\[|\]$/g, ''), port: Number(match[2]) };
  });
  if (nodes.length === 0) throw new Error('redis+cluster:// needs at least one host:port');
  return { nodes, username, password };
}

/**
 * One Redis connection for certq: a plain client for `redis://` / `rediss://`, an ioredis Cluster
 * for `redis+cluster://`. Typed as `Redis`: a Cluster answers the same commands and BullMQ takes
 * either; only the per-node administration (INFO, SCAN, FLUSHALL) differs, which certq does not use.
 */
export function createRedisConnection(url: string, options: RedisOptions = {}): Redis {
  if (!isRedisClusterUrl(url)) return new Redis(url, options);
  const { nodes, username, password } = parseRedisClusterUrl(url);
  const cluster = new Cluster(nodes, {
    redisOptions: { ...options, username, password },
    // BullMQ's blocking commands must not be retried through the offline queue forever.
    enableOfflineQueue: options.enableOfflineQueue ?? true,
    enableReadyCheck: true,
    slotsRefreshTimeout: 2000,
  });
  return cluster as unknown as Redis;
}
