export { buildApp, createApiLogger } from './app';
export type { ApiDeps, RouteOptions } from './deps';
export { type ApiMetrics, createApiMetrics } from './observability/metrics';
export { collectStats, type Stats } from './observability/stats';
export { buildOpenApiDocument, type OpenApiDoc, type OpenApiDocumentOptions } from './openapi-document';
export { type AuthMode, actorOf, type Principal, principalOf, tenantScope } from './plugins/auth';
export { ApiError, ErrorSchema, errorResponses, notFound } from './plugins/errors';
export { type RunningApi, type StartApiOptions, startApi } from './server';
