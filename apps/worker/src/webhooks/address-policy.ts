import { isIP } from 'node:net';
import { type AddressPolicy, BlockedAddressError, filteredLookup, nonPublicReason } from '@certq/core';
import { Agent, buildConnector } from 'undici';

/**
 * The dispatcher every webhook POST goes through. It enforces the address policy at connect time:
 * an IP-literal host is checked as is, a name is resolved by `filteredLookup`, which drops every
 * non-public answer — so a name that resolved to a public address when the tenant set it and to
 * 127.0.0.1 now (DNS rebinding) still cannot reach inside. undici's `request` follows no redirects.
 */
export function createWebhookDispatcher(
  policy: AddressPolicy,
  timeoutMs: number,
  /** Tests only: an exact host:port let through despite the policy (a redirecting server on loopback). */
  allowTarget?: (host: string, port: number) => boolean,
): Agent {
  const connector = buildConnector({ timeout: timeoutMs, lookup: filteredLookup(policy) });
  const open = buildConnector({ timeout: timeoutMs });
  return new Agent({
    connections: 16,
    connect: (options, callback) => {
      const host = options.hostname.replace(/^\[|\]$/g, '');
      if (allowTarget?.(host, Number(options.port))) {
        open(options, callback);
        return;
      }
      if (!policy.allowPrivate && isIP(host) && nonPublicReason(host)) {
        callback(new BlockedAddressError('the webhook host is not a public address'), null);
        return;
      }
      connector(options, callback);
    },
  });
}

/**
 * What a failed delivery records as `lastError`: a class of failure in words, never an address, a
 * port or a library's message (those map the internal network for whoever reads the deliveries).
 */
export function classifyDeliveryError(error: unknown): string {
  const codes: string[] = [];
  for (
    let e = error as { code?: unknown; cause?: unknown; name?: unknown } | undefined;
    e;
    e = e.cause as typeof e
  ) {
    if (typeof e.code === 'string') codes.push(e.code);
    if (typeof e.name === 'string') codes.push(e.name);
    if (codes.length > 10) break;
  }
  const has = (...names: string[]) => names.some((n) => codes.includes(n));
  if (has('EADDRBLOCKED')) return 'refused: the webhook host is not a public address';
  if (has('ENOTFOUND', 'EAI_AGAIN', 'EAI_NODATA', 'EAI_NONAME'))
    return 'the webhook host name does not resolve';
  if (has('ECONNREFUSED')) return 'connection refused';
  if (has('UND_ERR_CONNECT_TIMEOUT')) return 'connection timed out';
  if (has('UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'TimeoutError', 'AbortError', 'ETIMEDOUT'))
    return 'no answer in time';
  if (has('ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE')) return 'connection closed before an answer';
  if (codes.some((c) => c.startsWith('ERR_TLS') || c.startsWith('ERR_SSL') || /CERT|SSL/.test(c)))
    return 'TLS handshake failed';
  if (has('EHOSTUNREACH', 'ENETUNREACH')) return 'host unreachable';
  return 'delivery failed';
}

/** At most this many characters of a non-2xx answer's body are kept, printable ASCII only. */
export const RESPONSE_SNIPPET_CHARS = 200;

export function sanitizeSnippet(text: string): string {
  return text
    .slice(0, RESPONSE_SNIPPET_CHARS * 4)
    .replace(/[^\x20-\x7e]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, RESPONSE_SNIPPET_CHARS);
}
