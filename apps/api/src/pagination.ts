import { normalizeDomain } from '@certq/core';
import { arrayContains, eq, type SQL, sql } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';
import { z } from 'zod';
import { type Principal, tenantScope } from './plugins/auth';
import { badRequest, errorResponses } from './plugins/errors';

/**
 * Keyset pagination on (created_at desc, id desc). The cursor is opaque to clients: base64url of the
 * last row's created_at with Postgres's full microsecond precision (a JS Date would drop the
 * microseconds and skip or repeat rows) and its id.
 */
export interface Cursor {
  t: string;
  id: string;
}

const TIMESTAMP = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3})\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export { cursorTimestamp } from '@certq/db';

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.t, cursor.id])).toString('base64url');
}

/** Decodes a client's cursor; anything that is not one of ours answers 400 (never reaches SQL). */
export function decodeCursor(raw: string): Cursor {
  const invalid = () => badRequest('cursor: not a valid cursor (pass nextCursor from the previous page)');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) throw invalid();
  const [t, id] = parsed as unknown[];
  if (typeof t !== 'string' || typeof id !== 'string' || !UUID.test(id)) throw invalid();
  const match = TIMESTAMP.exec(t);
  // Round-trip through Date to refuse impossible dates (Feb 30) that Postgres would reject.
  const millis = match ? `${match[1]}Z` : '';
  const date = new Date(millis);
  if (!match || Number.isNaN(date.getTime()) || date.toISOString() !== millis || date.getUTCFullYear() < 1970)
    throw invalid();
  return { t, id };
}

/** `(created_at, id) < (cursor)`: rows after the cursor in newest-first order. */
export function afterCursor(createdAt: PgColumn, id: PgColumn, cursor: Cursor): SQL {
  return sql`(${createdAt}, ${id}) < (${cursor.t}::timestamptz, ${cursor.id}::uuid)`;
}

export const LimitSchema = z.coerce
  .number()
  .int()
  .min(1)
  .max(100)
  .default(50)
  .describe('page size, 1–100 (default 50)');
export const CursorSchema = z.string().max(512).describe('nextCursor of the previous page');

/**
 * The query of a listing of tenant-owned rows: the route's own `filters`, then what
 * `ownedPageConditions` reads (the operator's tenantId filter, the page size and the cursor).
 */
export function ownedListQuery<const Filters extends z.ZodRawShape>(filters: Filters) {
  return z.strictObject({
    ...filters,
    tenantId: z.uuid().optional().describe('operator only: one tenant'),
    limit: LimitSchema,
    cursor: CursorSchema.optional(),
  });
}

/**
 * The responses of a keyset-paginated listing: `{ [key]: items, nextCursor }` and the errors every
 * listing can answer (400 for a bad cursor or filter); `extraErrors` for what a route adds (the
 * operator-only ones answer 404 to tenants).
 */
export function pageResponse<const K extends string, Item extends z.ZodType, const E extends number = never>(
  key: K,
  item: Item,
  ...extraErrors: E[]
) {
  const shape = { [key]: z.array(item), nextCursor: z.string().nullable() } as {
    [P in K]: z.ZodArray<Item>;
  } & { nextCursor: z.ZodNullable<z.ZodString> };
  return { 200: z.object(shape), ...errorResponses<400 | 401 | 429 | E>(400, 401, 429, ...extraErrors) };
}

/** Splits a `limit + 1` query result into the page and the next cursor. */
export function page<Row extends { cursorTs: string; id: string }>(rows: Row[], limit: number) {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  const last = items[items.length - 1];
  return { items, nextCursor: more && last ? encodeCursor({ t: last.cursorTs, id: last.id }) : null };
}

/**
 * What every listing of tenant-owned rows starts with, newest first: the caller's tenant scope, the
 * operator's `tenantId` filter, and the rows after `cursor`.
 */
export function ownedPageConditions(
  principal: Principal,
  query: { tenantId?: string; cursor?: string },
  table: { tenantId: PgColumn; createdAt: PgColumn; id: PgColumn },
): SQL[] {
  const conditions: SQL[] = [];
  const scope = tenantScope(principal);
  if (scope) conditions.push(eq(table.tenantId, scope));
  if (query.tenantId) conditions.push(eq(table.tenantId, query.tenantId));
  if (query.cursor !== undefined)
    conditions.push(afterCursor(table.createdAt, table.id, decodeCursor(query.cursor)));
  return conditions;
}

/** The `domain` query parameter as a filter on a domain array: normalised like an order's, else 400. */
export function containsDomain(column: PgColumn, raw: string): SQL {
  const domain = normalizeDomain(raw);
  if (!domain.ok) throw badRequest(`querystring domain: ${domain.reason}`);
  return arrayContains(column, [domain.domain]);
}
