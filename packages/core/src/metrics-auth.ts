import type { Config } from './config';
import { safeEqual } from './crypto';

/**
 * Whether a `/metrics` request may read the metrics: a bearer METRICS_TOKEN, or the operator's
 * token (Bearer, or HTTP Basic with it as the password, for a browser). Shared by the API and the
 * worker's metrics listener so both refuse the same way.
 */
export function metricsAuthorized(
  authorization: string | undefined,
  config: Pick<Config, 'METRICS_TOKEN' | 'ADMIN_TOKEN'>,
): boolean {
  const header = authorization ?? '';
  const bearer = /^Bearer +([!-~]{1,512})\s*$/i.exec(header)?.[1];
  const accepted = [config.METRICS_TOKEN, config.ADMIN_TOKEN].filter((t): t is string => !!t);
  if (bearer) return accepted.some((token) => safeEqual(bearer, token));
  const basic = /^Basic +([A-Za-z0-9+/=]{1,1024})\s*$/i.exec(header)?.[1];
  if (!basic) return false;
  const decoded = Buffer.from(basic, 'base64').toString('utf8');
  if (!decoded.includes(':')) return false;
  const password = decoded.slice(decoded.indexOf(':') + 1);
  return accepted.some((token) => safeEqual(password, token));
}
