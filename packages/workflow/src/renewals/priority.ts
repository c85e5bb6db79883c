import { ACTIVE_STATUSES, PRIORITY } from '@certq/core';
import { orders, type Queryable } from '@certq/db';
import { and, count, eq, inArray } from 'drizzle-orm';

/** BullMQ refuses priorities above 2^21 − 1. */
export const MAX_JOB_PRIORITY = 2_097_151;

/**
 * Fairness between tenants. BullMQ runs the lowest priority number first, FIFO within one number.
 * New orders have PRIORITY.new (1); a renewal gets PRIORITY.renewal (10) plus its position in its
 * tenant's renewal backlog (0, 1, 2… counting that tenant's renewal orders already active). So the
 * first renewal of every tenant runs before the second of any, and so on: one tenant's 5,000
 * renewals interleave with another's 10 instead of queueing ahead of them, and every new order still
 * goes first. The priority is stored on the order, so its later stages (apply, poll) and any job the
 * reconciler puts back keep it. Capped at BullMQ's maximum (beyond ~2 million queued renewals of one
 * tenant the order among that tenant's tail is FIFO).
 */
export function renewalPriority(position: number): number {
  return Math.min(PRIORITY.renewal + Math.max(0, position), MAX_JOB_PRIORITY);
}

/**
 * Hands out backlog positions per tenant while renewal orders are being created. A tenant's first
 * position is the number of its renewal orders already active; memory is one number per tenant seen.
 */
export class RenewalBacklog {
  private readonly next = new Map<string, number>();

  constructor(private readonly db: Queryable) {}

  /** Loads the starting position of every tenant not seen yet (one query). */
  async load(tenantIds: Iterable<string>): Promise<void> {
    const unseen = [...new Set(tenantIds)].filter((id) => !this.next.has(id));
    if (unseen.length === 0) return;
    const rows = await this.db
      .select({ tenantId: orders.tenantId, n: count() })
      .from(orders)
      .where(
        and(
          inArray(orders.tenantId, unseen),
          inArray(orders.status, [...ACTIVE_STATUSES]),
          eq(orders.kind, 'renewal'),
        ),
      )
      .groupBy(orders.tenantId);
    for (const id of unseen) this.next.set(id, 0);
    for (const row of rows) this.next.set(row.tenantId, row.n);
  }

  /** The next position in this tenant's backlog (load it first). */
  take(tenantId: string): number {
    const position = this.next.get(tenantId);
    if (position === undefined) throw new Error(`backlog of tenant ${tenantId} not loaded`);
    this.next.set(tenantId, position + 1);
    return position;
  }
}

/**
 * When a renewal's first job may run: a random moment within `total / maxRps` seconds, so thousands
 * of renewals found at once reach the queues (and the upstream) spread out rather than in one second.
 */
export function spreadNotBefore(now: Date, total: number, maxRps: number, random: () => number): Date {
  const windowMs = (Math.max(0, total) / Math.max(1, maxRps)) * 1000;
  return new Date(now.getTime() + Math.floor(random() * windowMs));
}
