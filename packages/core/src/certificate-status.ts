/**
 * A certificate's life, written out once. Three facts are stored on the row: whether it is current
 * (`is_current`: served and watched; false once retired or replaced), its `state` (`active`, `moved`,
 * `uploaded`) and, for a retirement, why (`retired_reason`). Two statuses are derived at read time,
 * because storing them would need a write at a moment nothing happens: `expired` (from `not_after`)
 * and `renewing` (an active order of the tenant for the same domain set exists).
 */
export const CERTIFICATE_STATUSES = [
  'active',
  'renewing',
  'moved',
  'retired',
  'expired',
  'uploaded',
] as const;
export type CertificateStatus = (typeof CERTIFICATE_STATUSES)[number];

/** What the `state` column holds (see the header). */
export const CERTIFICATE_STATES = ['active', 'moved', 'uploaded'] as const;
export type CertificateState = (typeof CERTIFICATE_STATES)[number];

/** Why a certificate stopped being current (`retired_reason`; null: a newer certificate replaced it). */
export const RETIRED_REASONS = ['retired', 'tenant_deleted', 'tenant_suspended', 'transferred'] as const;
export type RetiredReason = (typeof RETIRED_REASONS)[number];

/**
 * Every status, what it means and how a certificate leaves it. The API's `statusReason` and the docs
 * read these sentences; a test checks the derivation below against them.
 */
export const CERTIFICATE_LIFE: Readonly<
  Record<
    CertificateStatus,
    { means: string; renewed: boolean; served: boolean; next: readonly CertificateStatus[] }
  >
> = {
  active: {
    means: 'issued by certq, served, renewed when its renewal time comes',
    renewed: true,
    served: true,
    next: ['renewing', 'moved', 'retired', 'expired'],
  },
  renewing: {
    means:
      'an order for the same domains is under way; the certificate is served until its successor is issued',
    renewed: true,
    served: true,
    next: ['active', 'moved', 'retired', 'expired'],
  },
  moved: {
    means:
      'its renewal found the CNAME missing or pointing elsewhere for longer than MOVED_GRACE_DAYS: renewals stopped, still served until it expires or is retired',
    renewed: false,
    served: true,
    next: ['active', 'renewing', 'retired', 'expired'],
  },
  uploaded: {
    means:
      'brought by the tenant: served like an issued one, never renewed by certq (an order for the same domains replaces it once issued)',
    renewed: false,
    served: true,
    next: ['renewing', 'retired', 'expired'],
  },
  retired: {
    means:
      'no longer served or renewed (retired, its tenant deleted or suspended with stopServing, or replaced by a newer certificate); kept as history',
    renewed: false,
    served: false,
    next: ['active', 'uploaded'],
  },
  expired: {
    means: 'past its notAfter: no longer valid; a new order for the same domains starts again',
    renewed: false,
    served: true,
    next: ['retired'],
  },
};

export interface CertificateFacts {
  isCurrent: boolean;
  state: CertificateState;
  retiredReason: RetiredReason | null;
  notAfter: Date;
  /** An active order of the tenant for the same domain set exists. */
  orderActive: boolean;
}

/** The status a certificate shows, from its stored facts at `now`, with one sentence saying why. */
export function certificateStatus(
  facts: CertificateFacts,
  now: Date,
): { status: CertificateStatus; reason: string } {
  if (!facts.isCurrent) {
    const why: Record<RetiredReason, string> = {
      retired: 'retired: renewals and delivery stopped',
      tenant_deleted: 'retired: its tenant was deleted',
      tenant_suspended:
        'not served while its tenant is suspended (stopServing); resuming the tenant serves it again',
      transferred: 'retired: one of its names was transferred to another tenant',
    };
    return {
      status: 'retired',
      reason: facts.retiredReason
        ? why[facts.retiredReason]
        : 'replaced by a newer certificate for the same domains',
    };
  }
  if (facts.notAfter.getTime() <= now.getTime())
    return { status: 'expired', reason: `expired at ${facts.notAfter.toISOString()}` };
  if (facts.state === 'moved') return { status: 'moved', reason: CERTIFICATE_LIFE.moved.means };
  if (facts.orderActive)
    return {
      status: 'renewing',
      reason:
        facts.state === 'uploaded'
          ? 'an order for the same domains will replace this uploaded certificate once issued'
          : CERTIFICATE_LIFE.renewing.means,
    };
  return { status: facts.state, reason: CERTIFICATE_LIFE[facts.state].means };
}
