import {
  type Order,
  type Queryable,
  type Transaction,
  type TransitionArgs,
  transitionOrder,
  transitionOrderIfUnchanged,
} from '@certq/db';
import type { WorkerContext } from '../context';

/** transitionOrder, counting orders that reach issued or failed (`certq_orders_finished_total`). */
export async function transition(ctx: WorkerContext, tx: Transaction, args: TransitionArgs): Promise<Order> {
  return counted(ctx, args, await transitionOrder(tx, args));
}

/**
 * transitionOrderIfUnchanged (no row lock: the UPDATE's WHERE checks the order is still in the status and
 * run it was read in), counted like `transition`; undefined when the order changed meanwhile.
 */
export async function transitionIfUnchanged(
  ctx: WorkerContext,
  db: Queryable,
  args: TransitionArgs,
): Promise<Order | undefined> {
  const updated = await transitionOrderIfUnchanged(db, args);
  return updated && counted(ctx, args, updated);
}

function counted(ctx: WorkerContext, args: TransitionArgs, updated: Order): Order {
  if (args.order.status !== updated.status && (updated.status === 'issued' || updated.status === 'failed')) {
    ctx.metrics.ordersFinished.inc({ status: updated.status, kind: updated.kind });
    if (updated.status === 'issued') ctx.upstream.certificateIssued();
  }
  return updated;
}
