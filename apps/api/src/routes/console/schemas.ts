import { ORDER_STATUSES } from '@certq/core';
import type { Database } from '@certq/db';
import { z } from 'zod';
import { BadFilter, type CertificateFilter, type OrderFilter, tenantByIdOrName } from './queries';

/** Query strings of the console's pages: what the search form sends (empty fields are "any"). */
const empty = (v: unknown) => (v === '' ? undefined : v);
const optional = <T extends z.ZodType>(schema: T) => z.preprocess(empty, schema.optional());

/** `datetime-local` inputs (no zone): read as UTC, as every time on the console is shown. */
const LocalTime = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/, 'a time as YYYY-MM-DDTHH:MM (UTC)')
  .transform((value, ctx) => {
    const date = new Date(`${value}Z`);
    if (Number.isNaN(date.getTime())) {
      ctx.addIssue({ code: 'custom', message: `not a time: ${value}` });
      return z.NEVER;
    }
    return date;
  });

const filterFields = {
  q: optional(z.string().max(300)),
  tenant: optional(z.string().max(200)),
  status: optional(z.enum(ORDER_STATUSES)),
  kind: optional(z.enum(['new', 'renewal'])),
  from: optional(z.string()),
  to: optional(z.string()),
};

export const OrderQuery = z.object({ ...filterFields, cursor: optional(z.string().max(512)) });
export type OrderQuery = z.output<typeof OrderQuery>;

export const BulkForm = z.object({
  ...filterFields,
  action: z.enum(['retry', 'cancel', 'renew']),
  expected: optional(z.coerce.number().int().min(0)),
});

export const CertificateQuery = z.object({
  q: optional(z.string().max(300)),
  tenant: optional(z.string().max(200)),
  within: optional(z.coerce.number().int().min(0).max(3650)),
  moved: optional(z.enum(['true', 'false'])).transform((v) => v === 'true' || undefined),
  cursor: optional(z.string().max(512)),
});
export type CertificateQuery = z.output<typeof CertificateQuery>;

export const IdParams = z.object({ id: z.uuid() });

function time(value: string | undefined, name: string): Date | undefined {
  if (value === undefined) return undefined;
  const parsed = LocalTime.safeParse(value);
  if (!parsed.success) throw new BadFilter(`${name}: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/** The tenant a form names (by id or name): undefined when it names none, null when none such exists. */
async function namedTenant(db: Database, named: string | undefined): Promise<string | undefined | null> {
  if (!named) return undefined;
  const tenant = await tenantByIdOrName(db, named.trim());
  return tenant ? tenant.id : null;
}

/** The order filter of the form; undefined when the named tenant does not exist. */
export async function toOrderFilter(
  db: Database,
  params: Omit<OrderQuery, 'cursor'>,
): Promise<OrderFilter | undefined> {
  const tenantId = await namedTenant(db, params.tenant);
  if (tenantId === null) return undefined;
  return {
    q: params.q,
    tenantId,
    status: params.status,
    kind: params.kind,
    from: time(params.from, 'from'),
    to: time(params.to, 'to'),
  };
}

export async function toCertificateFilter(
  db: Database,
  params: CertificateQuery,
): Promise<CertificateFilter | undefined> {
  const tenantId = await namedTenant(db, params.tenant);
  if (tenantId === null) return undefined;
  return { q: params.q, tenantId, expiringWithinDays: params.within, moved: params.moved };
}
