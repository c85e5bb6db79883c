import { type Order, type Transaction, type TransitionArgs, transitionOrder } from '@certq/db';
import type { WorkerContext } from '../context';

/** transitionOrder, counting orders that reach issued or failed (`certq_orders_finished_total`). */
export async function transition(ctx: WorkerContext, tx: Transaction, args: TransitionArgs): Promise<Order> {
  const updated = await transitionOrder(tx, args);
  if (args.order.status !== updated.status && (updated.status === 'issued' || updated.status === 'failed')) {
    ctx.metrics.ordersFinished.inc({ status: updated.status, kind: updated.kind });
  }
  return updated;
}
