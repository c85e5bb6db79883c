import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { createJsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import type { AuthMode } from './auth';
import { errorResponses } from './errors';

const DESCRIPTION = `certq takes certificate orders for many tenants and drives them through httpsok
(verify → apply → poll) with durable BullMQ jobs; PostgreSQL is the source of truth.

Authenticate with \`Authorization: Bearer <token>\`: the operator's ADMIN_TOKEN, or a tenant token
from \`POST /v1/tenants\`. A tenant only ever sees its own data: another tenant's ids answer 404.

Errors always have the shape \`{"error": {"code", "message", "details?"}}\`.

Ordering a domain set that already has an active (verifying/applying/issuing) order of the same
tenant returns that existing order with HTTP 200 instead of creating a second one (202).`;

type OpenApiDocument = ReturnType<typeof jsonSchemaTransformObject>;

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The answers every route of a kind can give, whatever its handler does, added to its documented
 * responses (a route's own description of a status wins): the auth hook's 401, 403 (an edge token
 * outside the delivery routes, a viewer token writing) and 429 (failed authentications) on every
 * authenticated route; the body parser's 400 (malformed JSON), 413 (body limit) and 415 (not JSON)
 * on every method that takes a body.
 */
function documentSharedAnswers(route: { method: string | string[]; schema?: unknown; config?: unknown }) {
  const schema = route.schema as { response?: Record<string, unknown>; hide?: boolean } | undefined;
  if (!schema?.response || schema.hide) return;
  const auth = (route.config as { auth?: AuthMode } | undefined)?.auth ?? 'any';
  const methods = [route.method].flat();
  const shared = {
    ...(auth !== 'none' ? errorResponses(401, 403, 429) : {}),
    ...(methods.some((m) => BODY_METHODS.has(m)) ? errorResponses(400, 413, 415) : {}),
  };
  schema.response = { ...shared, ...schema.response };
}

/**
 * The zod registry yields an input and an output variant of every named schema (`Order`,
 * `OrderInput`); keep only those the document references.
 */
function dropUnusedComponents(document: OpenApiDocument): OpenApiDocument {
  const doc = document as { components?: { schemas?: Record<string, unknown> }; paths?: unknown };
  const schemas = doc.components?.schemas;
  if (!schemas) return document;
  const used = JSON.stringify(doc.paths ?? {});
  const kept = Object.fromEntries(
    Object.entries(schemas).filter(([name]) => used.includes(`"#/components/schemas/${name}"`)),
  );
  return { ...document, components: { ...doc.components, schemas: kept } } as OpenApiDocument;
}

/**
 * The OpenAPI 3 document is generated from the routes' zod schemas: JSON at `/docs/json`, the UI at
 * `/docs`. Register it before the routes so it sees them all.
 */
export const openapiPlugin = fp(
  async (app: FastifyInstance) => {
    app.addHook('onRoute', (route) => documentSharedAnswers(route));
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: { title: 'certq API', version: '0.1.0', description: DESCRIPTION },
        // Relative: the API that serves this document (tools resolve it against the document's URL),
        // so one document fits every deployment and the generated SDK stays the same.
        servers: [{ url: '/', description: 'the certq API serving this document' }],
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN or a tenant token' },
          },
        },
        security: [{ bearerAuth: [] }],
        tags: [
          { name: 'tenants', description: 'operator: tenants and their tokens' },
          { name: 'orders', description: 'certificate orders' },
          { name: 'certificates', description: 'issued certificates' },
          { name: 'callbacks', description: 'httpsok issued-callback receiver' },
          { name: 'health', description: 'liveness and readiness' },
          { name: 'renewals', description: 'renewal batches' },
          { name: 'webhooks', description: 'tenant webhooks and their deliveries' },
          { name: 'operator', description: 'operator statistics' },
        ],
      },
      transform: createJsonSchemaTransform({ skipList: [] }),
      transformObject: (document) => dropUnusedComponents(jsonSchemaTransformObject(document)),
    });
    // The UI's own routes are public and carry their own CSP (inline bootstrap script).
    await app.register(async (docs) => {
      docs.addHook('onRoute', (route) => {
        route.config = { ...route.config, auth: 'none' };
      });
      await docs.register(swaggerUi, {
        routePrefix: '/docs',
        staticCSP: true,
        transformStaticCSP: (header) => header.replace(/\s*upgrade-insecure-requests;?/, ''),
      });
    });
  },
  { name: 'certq-openapi' },
);
