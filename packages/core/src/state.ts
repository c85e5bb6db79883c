/**
 * The order state machine: every allowed transition, written out once.
 * Handlers and routes never set `status` directly; they go through `transitionOrder` in @certq/db,
 * which refuses anything not listed here.
 */
export const ORDER_STATUSES = ['verifying', 'applying', 'issuing', 'issued', 'failed', 'cancelled'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

export const ACTIVE_STATUSES = ['verifying', 'applying', 'issuing'] as const satisfies readonly OrderStatus[];
export type ActiveStatus = (typeof ACTIVE_STATUSES)[number];

/** Where an order ends: nothing moves it on by itself (a failed order may be retried by hand). */
export const TERMINAL_STATUSES = ['issued', 'failed', 'cancelled'] as const satisfies readonly OrderStatus[];
export type TerminalStatus = (typeof TERMINAL_STATUSES)[number];

/** The active statuses as a SQL list (`'verifying', 'applying', 'issuing'`), for raw SQL and partial indexes. */
export const ACTIVE_STATUS_SQL_LIST = ACTIVE_STATUSES.map((s) => `'${s}'`).join(', ');

export const TRANSITIONS: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = {
  // verifying → verifying records another DNS check (new instructions, next attempt time).
  verifying: ['verifying', 'applying', 'failed', 'cancelled'],
  // applying → verifying: the upstream refused the application because a CNAME disappeared.
  applying: ['applying', 'issuing', 'verifying', 'failed', 'cancelled'],
  issuing: ['issuing', 'issued', 'failed', 'cancelled'],
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

export function isTerminal(status: OrderStatus): status is TerminalStatus {
  return (TERMINAL_STATUSES as readonly OrderStatus[]).includes(status);
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

/** What an order asks for: the key algorithm and the CA (httpsok's vocabulary), and why it exists. */
export const ALGORITHMS = ['ECC', 'RSA'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];
export const CERTIFICATE_AUTHORITIES = ['google', 'letsencrypt', 'zerossl'] as const;
export type CertificateAuthority = (typeof CERTIFICATE_AUTHORITIES)[number];
export const ORDER_KINDS = ['new', 'renewal'] as const;
export type OrderKind = (typeof ORDER_KINDS)[number];
