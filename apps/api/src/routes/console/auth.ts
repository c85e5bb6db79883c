import { type Config, safeEqual } from '@certq/core';
import type { FastifyRequest } from 'fastify';

/**
 * Who is looking at the console: the operator (ADMIN_TOKEN) or the read-only viewer (VIEWER_TOKEN).
 * Browsers cannot send a bearer token by themselves, so the console also takes HTTP Basic auth with
 * the token as the password (any user name), as /admin/queues does.
 */
export type ConsolePrincipal = { kind: 'admin' } | { kind: 'viewer' };

/**
 * The one check every console action goes through: the viewer sees everything and may do nothing.
 * (Checked on `principal.kind`, the same discriminant as the API's Principal.)
 */
export function canAct(principal: ConsolePrincipal): boolean {
  return principal.kind === 'admin';
}

/** The audit actor recorded in the events of orders changed from the console. */
export const CONSOLE_ACTOR = 'admin:console';

/** The token of the request: `Authorization: Bearer <t>`, or the password of `Basic`. */
export function presentedToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization ?? '';
  const bearer = /^Bearer +([!-~]{1,512})\s*$/i.exec(header)?.[1];
  if (bearer) return bearer;
  const basic = /^Basic +([A-Za-z0-9+/=]{1,1024})\s*$/i.exec(header)?.[1];
  if (!basic) return undefined;
  const decoded = Buffer.from(basic, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 ? decoded.slice(colon + 1) : undefined;
}

/** The operator tokens of this configuration; VIEWER_TOKEN is optional (unset: no viewer). */
export function consolePrincipal(request: FastifyRequest, config: Config): ConsolePrincipal | undefined {
  const token = presentedToken(request);
  if (!token) return undefined;
  if (config.ADMIN_TOKEN && safeEqual(token, config.ADMIN_TOKEN)) return { kind: 'admin' };
  const viewer = (config as Config & { VIEWER_TOKEN?: string }).VIEWER_TOKEN;
  if (viewer && safeEqual(token, viewer)) return { kind: 'viewer' };
  return undefined;
}
