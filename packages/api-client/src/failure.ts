import { isHttpsokError } from './errors';

/**
 * What a failed httpsok call says about the request, the one reading of an error every stage shares:
 * - `unverified`: httpsok refused it because a domain is not verified (for an apply: verify again);
 * - `rejected`: httpsok refused the request itself (an invalid domain, a bad field): sending it again
 *   cannot help, the order fails with httpsok's reason;
 * - `refused`: any other error envelope: nothing was done, the same request may succeed later;
 * - `rate_limited`: httpsok asked to slow down;
 * - `auth_failed`: the API key was refused;
 * - `unknown`: no answer from httpsok itself — a timeout, a reset, a body that does not parse, a
 *   gateway's 502/504 or any other non-2xx. For an apply the application may exist.
 *
 * Only an error envelope (HTTP 2xx, `code` ≠ 0) proves that httpsok made no application: everything
 * between certq and httpsok can answer an error after the request went through.
 */
export type UpstreamFailure =
  | 'unverified'
  | 'rejected'
  | 'refused'
  | 'rate_limited'
  | 'auth_failed'
  | 'unknown';

/** httpsok's codes are undocumented; these are the ones it (and the simulator) answers a bad request with. */
const REQUEST_REFUSED_CODES = new Set([400, 403, 413, 422]);

/** The refusal of a domain httpsok does not see verified (its `msg`; httpsok documents no code for it). */
export function refusedAsUnverified(msg: string): boolean {
  return /not verified|unverified|未验证|验证失败/i.test(msg);
}

export function classifyFailure(error: unknown): UpstreamFailure {
  if (!isHttpsokError(error)) return 'unknown';
  if (error.kind === 'upstream') {
    // An error envelope: httpsok answered, and did nothing.
    if (error.authFailed) return 'auth_failed';
    if (error.rateLimited) return 'rate_limited';
    if (refusedAsUnverified(error.msg)) return 'unverified';
    if (error.code !== null && REQUEST_REFUSED_CODES.has(error.code)) return 'rejected';
    return 'refused';
  }
  // A refused key does not create anything, whoever answered (and the order fails either way).
  if (error.authFailed) return 'auth_failed';
  // Reads are safe to repeat: a 429 from anywhere on the way means slow down.
  if (error.kind === 'http' && error.rateLimited && error.endpoint !== 'apply') return 'rate_limited';
  return 'unknown';
}

/** Whether the failure proves no application was made (an apply with any other failure may have made one). */
export function provesNoApplication(failure: UpstreamFailure): boolean {
  return failure !== 'unknown';
}
