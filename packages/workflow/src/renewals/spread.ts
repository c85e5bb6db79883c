/**
 * When a renewal's first job may run: a random moment within `total / maxRps` seconds, so thousands
 * of renewals found at once reach the queues (and the upstream) spread out rather than in one second.
 */
export function spreadNotBefore(now: Date, total: number, maxRps: number, random: () => number): Date {
  const windowMs = (Math.max(0, total) / Math.max(1, maxRps)) * 1000;
  return new Date(now.getTime() + Math.floor(random() * windowMs));
}
