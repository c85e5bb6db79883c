import { z } from 'zod';
import { LimitSchema } from '../../pagination';
import { Timestamp } from '../../schemas';

export const AuditEntrySchema = z
  .object({
    id: z.string().describe('increasing; newest first'),
    at: Timestamp,
    actor: z.string().describe('admin, viewer or tenant:<id>'),
    action: z
      .string()
      .describe('e.g. tenant.create, token.rotate, webhook.set, order.cancel, private_key.read'),
    tenantId: z.string().nullable(),
    subjectId: z.string().nullable(),
    ip: z.string().nullable().describe('the client address (behind a proxy: see TRUST_PROXY)'),
    requestId: z.string().nullable(),
    detail: z.unknown(),
  })
  .meta({ id: 'AuditEntry' });

export const AuditQuery = z.strictObject({
  tenantId: z.uuid().optional(),
  action: z.string().max(100).optional(),
  limit: LimitSchema,
  cursor: z
    .string()
    .regex(/^\d{1,16}$/, 'pass nextCursor from the previous page')
    .refine((c) => Number.isSafeInteger(Number(c)), 'pass nextCursor from the previous page')
    .optional(),
});
