import { UPSTREAM_FLOOR_MS } from '@certq/core';
import { type Order, orders, updateOrders } from '@certq/db';
import { and, type SQL, sql } from 'drizzle-orm';
import type { WorkerContext } from '../context';

/**
 * The upstream's floor between two requests for one application, kept in Postgres for whoever asks (a
 * poll, or the apply task re-fetching an announced application): before sending, claim the slot with one
 * conditional UPDATE that sets `last_polled_at` to the latest moment the request could reach the
 * upstream (now + client timeout). The condition reads the row's current value: under READ COMMITTED a
 * concurrent claimant re-checks it after the first commit, so only one wins; a crash mid-request leaves
 * the pessimistic value, so the floor still holds. `where` says which order, in which state.
 * Returns the claimed row, or undefined when the slot is taken (or the order is not as described).
 * The caller takes its rate-limit token after a claim, never before: a request that will not be sent
 * spends no upstream budget (a poll's token comes first under load, so its wait stays short).
 */
export async function claimPollSlot(
  ctx: WorkerContext,
  /** Which order, in which state: a fragment built once, with placeholders for what differs per call. */
  where: SQL,
  values: Record<string, unknown>,
): Promise<Order | undefined> {
  const [claimed] = await updateOrders(
    ctx.db,
    { lastPolledAt: reachesUpstreamBy(ctx.config.UPSTREAM_TIMEOUT_MS) },
    withFloor(where),
    values,
  );
  return claimed;
}

/** The floor's condition: no request for this application in the last UPSTREAM_FLOOR_MS. */
const FLOOR_FREE = sql`(${orders.lastPolledAt} is null or ${orders.lastPolledAt} <= clock_timestamp() - make_interval(secs => ${UPSTREAM_FLOOR_MS / 1000}))`;

// Built once per condition and per timeout, so the statement's fragments are rendered once (see StatementText).
const floored = new WeakMap<SQL, SQL>();
function withFloor(where: SQL): SQL {
  let both = floored.get(where);
  if (!both) {
    both = and(where, FLOOR_FREE)!;
    floored.set(where, both);
  }
  return both;
}
const latestArrival = new Map<number, SQL>();
/** The latest moment a request sent now can reach the upstream: now + the client's timeout. */
function reachesUpstreamBy(timeoutMs: number): SQL {
  let at = latestArrival.get(timeoutMs);
  if (!at) {
    at = sql`clock_timestamp() + make_interval(secs => ${timeoutMs / 1000})`;
    latestArrival.set(timeoutMs, at);
  }
  return at;
}
