import { sql } from 'drizzle-orm';
import type { Queryable } from './client';

/** Calls of one endpoint for one reason, as a worker adds them up between two flushes. */
export interface UpstreamCallCount {
  endpoint: string;
  reason: string;
  calls: number;
}

/** Adds a worker's counts since its last flush to the minute `at` falls in: one statement. */
export async function addUpstreamUsage(
  db: Queryable,
  at: Date,
  counts: readonly UpstreamCallCount[],
  issued: number,
): Promise<void> {
  const minute = new Date(Math.floor(at.getTime() / 60_000) * 60_000);
  await db.execute(sql`
    with calls as (
      insert into upstream_calls (minute, endpoint, reason, calls)
      select ${minute}, e, r, n from unnest(${sql.param(counts.map((c) => c.endpoint))}::text[],
        ${sql.param(counts.map((c) => c.reason))}::text[], ${sql.param(counts.map((c) => c.calls))}::bigint[]) as t(e, r, n)
      on conflict (minute, endpoint, reason) do update set calls = upstream_calls.calls + excluded.calls)
    insert into upstream_issued (minute, issued) select ${minute}, ${issued}::bigint where ${issued}::bigint > 0
    on conflict (minute) do update set issued = upstream_issued.issued + excluded.issued`);
}

/** The calls and issued certificates of the minutes from `since` on. */
export async function readUpstreamUsage(
  db: Queryable,
  since: Date,
): Promise<{ counts: UpstreamCallCount[]; issued: number }> {
  const counts = await db.execute<{ endpoint: string; reason: string; calls: number }>(sql`
    select endpoint, reason, sum(calls)::float8 as calls from upstream_calls where minute >= ${since}
    group by endpoint, reason order by endpoint, reason`);
  const issued = await db.execute<{ issued: number }>(sql`
    select coalesce(sum(issued), 0)::float8 as issued from upstream_issued where minute >= ${since}`);
  return { counts: counts.rows, issued: issued.rows[0]?.issued ?? 0 };
}

/** Deletes the minutes before `before` (a week of them is kept: a few thousand rows). */
export async function purgeUpstreamUsage(db: Queryable, before: Date): Promise<void> {
  await db.execute(sql`
    with calls as (delete from upstream_calls where minute < ${before})
    delete from upstream_issued where minute < ${before}`);
}
