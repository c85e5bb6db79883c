export { startCaddy } from './caddy';
export { requireBinary, type TlsServer } from './common';
export { startHaproxy } from './haproxy';
export { startNginx } from './nginx';
export {
  type PgBouncerServer,
  type PrivateServer,
  type RedisClusterServer,
  startPgBouncer,
  startPrivateRedis,
  startRedisCluster,
} from './scale-out';
