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
 * the pessimistic value, so the floor still holds. `conditions` say which order, in which state.
 * Returns the claimed row, or undefined when the slot is taken (or the order is not as described).
 */
export async function claimPollSlot(ctx: WorkerContext, conditions: SQL[]): Promise<Order | undefined> {
  const [claimed] = await updateOrders(
    ctx.db,
    {
      lastPolledAt: sql`clock_timestamp() + make_interval(secs => ${ctx.config.UPSTREAM_TIMEOUT_MS / 1000})`,
    },
    and(
      ...conditions,
      sql`(${orders.lastPolledAt} is null or ${orders.lastPolledAt} <= clock_timestamp() - make_interval(secs => ${UPSTREAM_FLOOR_MS / 1000}))`,
    )!,
  );
  return claimed;
}
