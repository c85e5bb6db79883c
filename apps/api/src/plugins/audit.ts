import { auditLog, type Database } from '@certq/db';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { actorOf, isReadMethod } from './auth';

/** Action names of the state-changing routes; a write route missing here is audited as `METHOD /pattern`. */
const ACTIONS: Record<string, string> = {
  'POST /v1/tenants': 'tenant.create',
  'PUT /v1/webhook': 'webhook.set',
  'DELETE /v1/webhook': 'webhook.remove',
  'PUT /v1/tenants/:id/webhook': 'webhook.set',
  'DELETE /v1/tenants/:id/webhook': 'webhook.remove',
  'POST /v1/orders/:id/retry': 'order.retry',
  'DELETE /v1/orders/:id': 'order.cancel',
  'POST /v1/orders/:id/dns-check': 'order.dns_check',
  'PUT /v1/tenants/:id/ca-choices': 'tenant.ca_choices',
  'POST /v1/edge-tokens': 'edge_token.create',
  'DELETE /v1/edge-tokens/:id': 'edge_token.revoke',
  'POST /v1/renewals': 'renewals.request',
  'POST /v1/token/rotate': 'token.rotate',
  'POST /v1/tenants/:id/token/rotate': 'token.rotate',
  'POST /v1/tenants/:id/token/revoke': 'token.revoke',
};

/**
 * Not audited here: order creation (each order row is its own record, with its tenant and time, and
 * auditing the hot path would double its writes) and the routes that audit themselves
 * (private-key reads, which write their row before the key is handed out; tenant creation, which
 * knows the new tenant's id; the life-cycle routes, which record what they changed and how much).
 */
const NOT_AUDITED = new Set([
  'POST /v1/orders',
  'POST /v1/orders/bulk',
  'POST /v1/tenants',
  'DELETE /v1/certificates/:id',
  'POST /v1/certificates',
  'POST /v1/tenants/:id/suspend',
  'POST /v1/tenants/:id/resume',
  'DELETE /v1/tenants/:id',
  // A transfer writes its own rows (one per previous holder, what moved and why), in its transaction.
  'POST /v1/domains/:name/transfer',
  // Rotation and revocation name the tokens concerned (ids, never the tokens).
  'POST /v1/token/rotate',
  'POST /v1/tenants/:id/token/rotate',
  'POST /v1/tenants/:id/token/revoke',
]);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

declare module 'fastify' {
  interface FastifyRequest {
    /** What a state-changing route changed, for its audit row: subject and old/new values, no secrets. */
    auditChange?: AuditChange;
  }
  interface FastifyInstance {
    /** Private-key reads of the TLS route, written in batches (see audit-buffer.ts). */
    keyReads: import('./audit-buffer').AuditBuffer;
  }
}

export interface AuditOptions extends Record<string, unknown> {
  db: Database;
}

export interface AuditChange {
  subjectId?: string | null;
  tenantId?: string | null;
  /** Field → `{ old, new }` (a secret appears as `'[changed]'` or `'[removed]'`, never its value). */
  changes?: Record<string, { old: unknown; new: unknown }>;
  /** Anything else worth keeping (counts, a filter). */
  detail?: Record<string, unknown>;
}

export interface AuditEntry {
  action: string;
  tenantId?: string | null;
  subjectId?: string | null;
  detail?: Record<string, unknown>;
}

/** One audit row for `request` (actor, client address, request id from the request). */
export async function writeAudit(db: Database, request: FastifyRequest, entry: AuditEntry): Promise<void> {
  const principal = request.principal;
  await db.insert(auditLog).values({
    tenantId: entry.tenantId ?? (principal?.kind === 'tenant' ? principal.tenantId : null),
    actor: principal ? actorOf(principal) : 'anonymous',
    action: entry.action,
    subjectId: entry.subjectId ?? null,
    detail: entry.detail ?? null,
    ip: request.ip,
    requestId: request.id,
  });
}

/**
 * Every successful state-changing request by an operator or a tenant leaves an audit row (listed by
 * `GET /v1/audit`). Written after the answer: a failure to record is logged, the change stands.
 */
export const auditPlugin = fp<AuditOptions>(
  async (app: FastifyInstance, options) => {
    app.addHook('onResponse', async (request, reply) => {
      const principal = request.principal;
      if (!principal || isReadMethod(request.method) || reply.statusCode >= 300) return;
      const route = `${request.method} ${request.routeOptions.url ?? ''}`;
      if (NOT_AUDITED.has(route) || request.routeOptions.url === undefined) return;
      const params = (request.params ?? {}) as Record<string, unknown>;
      const id = typeof params.id === 'string' && UUID.test(params.id) ? params.id : null;
      const tenantRoute = (request.routeOptions.url ?? '').startsWith('/v1/tenants/:id');
      try {
        const change = request.auditChange;
        await writeAudit(options.db, request, {
          action: ACTIONS[route] ?? route,
          tenantId: change?.tenantId ?? (tenantRoute ? id : undefined),
          subjectId: change?.subjectId ?? id,
          detail: {
            statusCode: reply.statusCode,
            ...(change?.changes ? { changes: change.changes } : {}),
            ...change?.detail,
          },
        });
      } catch (error) {
        request.log.warn({ err: error, route }, 'could not write the audit row');
      }
    });
  },
  { name: 'certq-audit' },
);
