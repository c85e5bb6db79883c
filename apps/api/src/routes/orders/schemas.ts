import {
  CERTIFICATE_AUTHORITIES,
  normalizeDomainList,
  ORDER_KINDS,
  ORDER_STATUSES,
  RENEWAL_REASONS,
} from '@certq/core';
import { DNS_STATUSES } from '@certq/db';
import { z } from 'zod';
import { ownedListQuery } from '../../pagination';
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
    '1–100 distinct domains, each mapped to its A-label form by UTS #46 (nontransitional, every check on), ' +
      'one trailing dot dropped, duplicates removed; at most 237 characters; not a public suffix; ' +
      'a wildcard only as the whole leftmost label; no IP addresses, no invisible characters',
  );

/** One CA, or a list in order of preference: the list is kept as given, never reordered or deduplicated. */
export const CaChoiceSchema = z
  .union([
    CaSchema,
    z
      .array(CaSchema)
      .min(1)
      .max(CERTIFICATE_AUTHORITIES.length)
      .refine((list) => new Set(list).size === list.length, 'each CA may appear once'),
  ])
  .describe(
    'one CA, or CAs in order of preference (e.g. ["google", "letsencrypt"]): a CA the domains\' CAA records ' +
      "forbid, or whose application fails, hands the order to the next one. Default: the tenant's default " +
      'list (PUT /v1/tenants/{id}/ca-choices), else google',
  );

/** The OrderRequest fields for a `ca` given as a string or a list. */
export function caRequest(ca: z.output<typeof CaChoiceSchema> | undefined) {
  if (ca === undefined) return {};
  return typeof ca === 'string' ? { ca } : { ca: ca[0], caChoices: ca };
}

export const OrderInputSchema = z.strictObject({
  domains: DomainListSchema,
  algorithm: AlgorithmSchema.optional().describe('default ECC'),
  ca: CaChoiceSchema.optional(),
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
  host: z.string().describe('the CNAME name relative to the registered domain, as httpsok gives it'),
  hostValue: z.string().describe('the CNAME target'),
  valid: z.boolean().describe("httpsok's last word on this record"),
  status: z
    .enum(DNS_STATUSES)
    .describe(
      "certq's own check: pending (not checked yet), ok, missing, wrong_target, caa_forbidden, lookup_failed " +
        "(certq's resolver could not tell: never the tenant's fault)",
    ),
  found: z.string().nullable().describe('what <host>.<registered domain> is a CNAME to now, or null'),
  reason: z.string().nullable().describe('one sentence the tenant can act on, naming the exact record'),
  checkedAt: Timestamp.describe('last check, local or by httpsok'),
});
export type DnsRecord = z.output<typeof DnsRecordSchema>;

export const OrderSchema = z
  .object({
    id: z.string(),
    tenantId: z.string(),
    kind: z.enum(ORDER_KINDS),
    renewalReason: z
      .enum(RENEWAL_REASONS)
      .nullable()
      .describe(
        'why a renewal was created: nearing_expiry (its certificate reached its renewal time), manual (POST /v1/renewals); null for a new order',
      ),
    domains: z.array(z.string()),
    algorithm: AlgorithmSchema,
    ca: CaSchema.describe('the CA of the current attempt'),
    caChoices: z
      .array(CaSchema)
      .describe('every CA of the order in order of preference (`ca` is one of them)'),
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

export const OrderListQuery = ownedListQuery({
  status: z.enum(ORDER_STATUSES).optional(),
  domain: z.string().max(1000).optional().describe('orders containing this domain (normalised)'),
});

export const IdempotencyHeaders = z.looseObject({
  'idempotency-key': z
    .string()
    .optional()
    .describe('1–255 printable ASCII characters; same key and body → the same order, another body → 409'),
});
