import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook signatures. Every POST carries
 *   x-certq-timestamp: <unix seconds>
 *   x-certq-signature: sha256=<hex HMAC-SHA256(secret, `${timestamp}.${body}`)>
 * over the exact body bytes sent. Receivers recompute it with their secret, compare in constant time
 * and refuse old timestamps (replays).
 */
export function signWebhook(secret: string, timestamp: number | string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export interface VerifyWebhookArgs {
  secret: string;
  body: string;
  timestamp: string | undefined;
  signature: string | undefined;
  /** How old a timestamp may be, in seconds (default 300). */
  toleranceSeconds?: number;
  nowSeconds?: number;
}

/** What a receiver does: true when the signature matches and the timestamp is recent. */
export function verifyWebhookSignature(args: VerifyWebhookArgs): boolean {
  const { secret, body, timestamp, signature } = args;
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp)) return false;
  const now = args.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > (args.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(signWebhook(secret, timestamp, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
