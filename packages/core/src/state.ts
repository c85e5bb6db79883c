/**
 * The order state machine: every allowed transition, written out once.
 * Handlers and routes never set `status` directly; they go through `transitionOrder` in @certq/db,
 * which refuses anything not listed here.
 */
export const ORDER_STATUSES = ['verifying', 'applying', 'issuing', 'issued', 'failed', 'cancelled'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

export const ACTIVE_STATUSES = ['verifying', 'applying', 'issuing'] as const satisfies readonly OrderStatus[];
export type ActiveStatus = (typeof ACTIVE_STATUSES)[number];

export const TRANSITIONS: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = {
  // verifying → verifying records another DNS check (new instructions, next attempt time).
  verifying: ['verifying', 'applying', 'failed', 'cancelled'],
  // applying → verifying: the upstream refused the application because a CNAME disappeared.
  applying: ['applying', 'issuing', 'verifying', 'failed', 'cancelled'],
  // issuing → verifying: the application ended with status 3 and the order's next CA gets a new run.
  issuing: ['issuing', 'issued', 'verifying', 'failed', 'cancelled'],
  issued: [],
  // failed → verifying is the operator's or tenant's explicit retry.
  failed: ['verifying'],
  cancelled: [],
};

export function canTransition(from: OrderStatus, to: OrderStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export function isActive(status: OrderStatus): status is ActiveStatus {
  return (ACTIVE_STATUSES as readonly OrderStatus[]).includes(status);
}

export function isTerminal(status: OrderStatus): boolean {
  return TRANSITIONS[status].length === 0 || status === 'failed';
}

export class IllegalTransitionError extends Error {
  constructor(
    readonly from: OrderStatus,
    readonly to: OrderStatus,
  ) {
    super(`illegal order transition ${from} → ${to}`);
    this.name = 'IllegalTransitionError';
  }
}

/** The queue stage that drives an active order forward. */
export type Stage = 'verify' | 'apply' | 'poll';
export const STAGE_OF: Readonly<Record<ActiveStatus, Stage>> = {
  verifying: 'verify',
  applying: 'apply',
  issuing: 'poll',
};
