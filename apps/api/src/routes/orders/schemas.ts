import { normalizeDomainList, ORDER_KINDS, ORDER_STATUSES } from '@certq/core';
import { z } from 'zod';
import { CursorSchema, LimitSchema } from '../../pagination';
import { AlgorithmSchema, CaSchema, Timestamp } from '../../schemas';

/** Raw entries are capped at 1000 (duplicates allowed) so normalisation work stays bounded. */
export const DomainListSchema = z
  .array(z.string().max(1000))
  .min(1)
  .max(1000)
  .transform((list, ctx) => {
    const result = normalizeDomainList(list);
    if (!result.ok) {
      ctx.addIssue({
        code: 'custom',
        message: result.reason,
        path: result.index === undefined ? [] : [result.index],
        input: list,
      });
      return z.NEVER;
    }
    return result.domains;
  })
  .describe(
    '1–100 distinct domains: lower-cased, IDN to punycode, one trailing dot dropped, duplicates removed; ' +
      'a wildcard only as the whole leftmost label; no IP addresses',
  );

export const OrderInputSchema = z.strictObject({
  domains: DomainListSchema,
  algorithm: AlgorithmSchema.optional().describe('default ECC'),
  ca: CaSchema.optional().describe('default google'),
  tenantId: z
    .uuid()
    .optional()
    .describe('required with the operator token; with a tenant token omit it (or give your own id)'),
});
export type OrderInput = z.output<typeof OrderInputSchema>;

export const MAX_BULK_ORDERS = 10_000;
export const BulkInputSchema = z.strictObject({
  orders: z.array(OrderInputSchema).min(1).max(MAX_BULK_ORDERS),
});

export const DnsRecordSchema = z.object({
  domain: z.string(),
  host: z.string(),
  hostValue: z.string(),
  valid: z.boolean(),
});
export type DnsRecord = z.output<typeof DnsRecordSchema>;

export const OrderSchema = z
  .object({
    id: z.string(),
    tenantId: z.string(),
    kind: z.enum(ORDER_KINDS),
    domains: z.array(z.string()),
    algorithm: AlgorithmSchema,
    ca: CaSchema,
    status: z.enum(ORDER_STATUSES),
    applyId: z.string().nullable(),
    progress: z.number(),
    dns: z.array(DnsRecordSchema),
    attempts: z.number(),
    lastError: z.string().nullable(),
    certificateId: z.string().nullable(),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .meta({ id: 'Order' });
export type OrderView = z.output<typeof OrderSchema>;

export const OrderListQuery = z.strictObject({
  status: z.enum(ORDER_STATUSES).optional(),
  domain: z.string().max(1000).optional().describe('orders containing this domain (normalised)'),
  tenantId: z.uuid().optional().describe('operator only: one tenant'),
  limit: LimitSchema,
  cursor: CursorSchema.optional(),
});

export const IdempotencyHeaders = z.looseObject({
  'idempotency-key': z
    .string()
    .optional()
    .describe('1–255 printable ASCII characters; same key and body → the same order, another body → 409'),
});
