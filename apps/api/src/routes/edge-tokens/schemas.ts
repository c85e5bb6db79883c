import { z } from 'zod';
import { DisplayName, Timestamp } from '../../schemas';

export const EdgeTokenInputSchema = z.strictObject({
  name: DisplayName.describe('what the token is for, e.g. "edge-fra-1"'),
  tenantIds: z
    .array(z.uuid())
    .min(1)
    .max(1000)
    .optional()
    .describe('limit the token to these tenants; absent: every tenant, including future ones'),
});

export const EdgeTokenSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    tenantIds: z.array(z.string()).nullable().describe('null: every tenant'),
    createdAt: Timestamp,
    revokedAt: Timestamp.nullable(),
    lastUsedAt: Timestamp.nullable().describe('updated every few seconds, not per request'),
    useCount: z.number().int(),
    lastSeenAt: Timestamp.nullable().describe(
      'last contact (TLS route or change feed), to the minute: an edge following the feed is seen at least every minute',
    ),
  })
  .meta({ id: 'EdgeToken' });

export const CreatedEdgeTokenSchema = EdgeTokenSchema.extend({
  token: z.string().describe('the bearer token, shown once: only its hash is kept'),
});
