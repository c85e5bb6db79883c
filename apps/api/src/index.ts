export { buildApp, createApiLogger, REDACT_PATHS } from './app';
export type { ApiDeps, RouteOptions } from './deps';
export { enqueueSafely } from './enqueue';
export { type ApiMetrics, createApiMetrics } from './observability/metrics';
export { collectStats, type Stats } from './observability/stats';
export { globalPlugin } from './plugin';
export { type AuthMode, actorOf, type Principal, principalOf, tenantScope } from './plugins/auth';
export { ApiError, ErrorSchema, errorResponses, notFound } from './plugins/errors';
export { type RunningApi, type StartApiOptions, startApi } from './server';
