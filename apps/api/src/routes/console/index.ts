import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { auditLog, edgeTokens } from '@certq/db';
import {
  cancelOrder,
  deleteTenant,
  isWorkflowError,
  resumeTenant,
  retireCertificate,
  retryOrder,
  suspendTenant,
} from '@certq/workflow';
import { sql } from 'drizzle-orm';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { RouteOptions } from '../../deps';
import { writeAudit } from '../../plugins/audit';
import { operatorTokenRequired, refuseThrottled } from '../../plugins/auth';
import { ApiError, postgresRejectedInput, WORKFLOW_STATUS } from '../../plugins/errors';
import { CONSOLE_ACTOR, type ConsolePrincipal, canAct, consolePrincipal } from './auth';
import { BulkJobs, bulkPreview } from './bulk';
import { type Html, html, queryString } from './html';
import {
  BadFilter,
  type ChartData,
  certificateDetail,
  expiringPerDay,
  orderDetail,
  orderLiveState,
  outcomesPerHour,
  searchCertificates,
  searchOrders,
  tenantByIdOrName,
  tenantDetail,
} from './queries';
import {
  BulkForm,
  CertificateQuery,
  IdParams,
  OrderQuery,
  toCertificateFilter,
  toOrderFilter,
} from './schemas';
import {
  bulkPreviewPanel,
  bulkProgressPanel,
  certificatePage,
  certificateRows,
  certificatesPage,
  edgeTokensPage,
  flash,
  layout,
  messagePage,
  orderLive,
  orderPage,
  orderRows,
  ordersPage,
  orderTimeline,
  overviewPage,
  tenantPage,
} from './templates';

/**
 * The operator console at /admin: server-rendered pages with a little htmx, charts by Chart.js, both
 * served from our own node_modules (no CDN: the console works without internet access). Same operator
 * auth as /admin/queues (Bearer, or Basic with the token as password); the viewer (VIEWER_TOKEN) sees
 * every page and is refused every action (403) by `canAct`. Actions call the same @certq/workflow
 * functions as the JSON API (retryOrder, cancelOrder, requestRenewals): the console has no state change
 * of its own.
 */
declare module 'fastify' {
  interface FastifyRequest {
    consolePrincipal?: ConsolePrincipal;
    /** What a console action did, for its audit row (written once it answered 2xx). */
    consoleAudit?: { action: string; subjectId?: string | null; tenantId?: string | null; detail: object };
  }
}

const require = createRequire(import.meta.url);
const ASSETS: Record<string, { file: string; type: string }> = {
  'htmx.min.js': { file: require.resolve('htmx.org/dist/htmx.min.js'), type: 'text/javascript' },
  // chart.js exports only its entry points; the UMD build sits beside the CommonJS one.
  'chart.umd.min.js': {
    file: join(dirname(require.resolve('chart.js')), 'chart.umd.min.js'),
    type: 'text/javascript',
  },
  'console.js': {
    file: fileURLToPath(new URL('./assets/console.js', import.meta.url)),
    type: 'text/javascript',
  },
  'console.css': { file: fileURLToPath(new URL('./assets/console.css', import.meta.url)), type: 'text/css' },
};

const CHART_CACHE_MS = 10_000;

export const consoleRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  const { db, config } = deps;
  const bulk = new BulkJobs({
    db,
    queues: deps.queues,
    maxRps: config.UPSTREAM_MAX_RPS,
    enqueueTimeoutMs: deps.enqueueTimeoutMs ?? 2000,
    log: app.log,
  });
  // Forms htmx posts (bulk actions): parsed by the standard library, for this plugin's routes only.
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 64 * 1024 },
    (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );

  app.addHook('onRoute', (route) => {
    route.config = { ...(route.config as object), auth: 'none', rateLimit: false } as typeof route.config;
    route.schema = { ...(route.schema ?? {}), hide: true };
  });
  app.addHook('onRequest', async (request, reply) => {
    if (request.url.startsWith('/admin/assets/')) return;
    await refuseThrottled(app.authThrottle, request, reply);
    const principal = consolePrincipal(request, config);
    if (!principal) {
      // A browser's first visit sends no credentials: only a token presented and wrong is a failure.
      if (request.headers.authorization !== undefined) await app.authThrottle.fail(request.ip);
      throw operatorTokenRequired(reply);
    }
    request.consolePrincipal = principal;
    if (request.method !== 'GET') {
      // Browsers send cached Basic credentials with any cross-site form post; htmx's header cannot be
      // set by another site without a CORS preflight we never allow, so it proves the request is ours.
      if (request.headers['hx-request'] !== 'true')
        throw new ApiError(403, 'forbidden', 'console actions are sent by the console page (HX-Request)');
      if (!canAct(principal)) throw new ApiError(403, 'forbidden', 'the viewer token can look but not act');
    }
  });
  // Every console action leaves an audit row (actor `admin`, via the console), with what it did.
  app.addHook('onResponse', async (request, reply) => {
    const entry = request.consoleAudit;
    if (!entry || reply.statusCode >= 300) return;
    try {
      await db.insert(auditLog).values({
        tenantId: entry.tenantId ?? null,
        actor: 'admin',
        action: entry.action,
        subjectId: entry.subjectId ?? null,
        detail: { ...entry.detail, via: 'console' },
        ip: request.ip,
        requestId: request.id,
      });
    } catch (error) {
      request.log.warn({ err: error, action: entry.action }, 'could not write the audit row');
    }
  });
  // Action errors come back as a message htmx swaps into the page (console.js lets 4xx swap).
  app.setErrorHandler(async (error, request, reply) => {
    const status =
      error instanceof ApiError
        ? error.statusCode
        : isWorkflowError(error)
          ? WORKFLOW_STATUS[error.code]
          : postgresRejectedInput(error) || error instanceof BadFilter
            ? 400
            : ((error as { statusCode?: number }).statusCode ?? 500);
    if (status >= 500) request.log.error({ err: error }, 'console error');
    const message =
      status >= 500
        ? 'something went wrong; see the API log'
        : postgresRejectedInput(error)
          ? 'the request contains characters that cannot be used (e.g. a NUL)'
          : (error as Error).message;
    if (status === 401) reply.header('www-authenticate', 'Basic realm="certq admin", charset="UTF-8"');
    reply.code(status).header('cache-control', 'no-store');
    if (request.headers['hx-request'] === 'true' || !request.consolePrincipal)
      return reply.type('text/html; charset=utf-8').send(flash('error', `${status} ${message}`).value);
    return reply
      .type('text/html; charset=utf-8')
      .send(page(request, 'Error', messagePage(`Error ${status}`, message)));
  });

  const principalOf = (request: FastifyRequest) => request.consolePrincipal!;
  const page = (request: FastifyRequest, title: string, body: Html) =>
    layout(principalOf(request), title, body).value;
  const send = (reply: FastifyReply, markup: Html | string) =>
    reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(typeof markup === 'string' ? markup : markup.value);

  // ── assets ──
  const assetCache = new Map<string, Buffer>();
  app.get('/admin/assets/:name', async (request, reply) => {
    const asset = ASSETS[(request.params as { name: string }).name];
    if (!asset) throw new ApiError(404, 'not_found', 'no such asset');
    let body = assetCache.get(asset.file);
    if (!body) {
      body = readFileSync(asset.file);
      assetCache.set(asset.file, body);
    }
    return reply.type(asset.type).header('cache-control', 'public, max-age=300').send(body);
  });

  // ── overview and charts ──
  // The snapshot /v1/stats and /metrics read (app.stats): a page view never aggregates the tables.
  app.get('/admin', async (request, reply) => {
    const stats = await app.stats.get();
    const tenants = stats.orders.byTenant.map((t) => ({ id: t.tenantId, name: t.tenantName }));
    return send(
      reply,
      page(request, 'Overview', overviewPage(stats.orders.byStatus, tenants, stats.capacity)),
    );
  });

  let chartCache: { at: number; data: ChartData } | undefined;
  app.get('/admin/api/charts', async (_request, reply) => {
    if (!chartCache || Date.now() - chartCache.at > CHART_CACHE_MS) {
      const queues = await Promise.all(
        deps.queues.every().map(async (queue) => {
          const c = await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'failed');
          return {
            name: queue.name,
            waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
            delayed: c.delayed ?? 0,
            active: c.active ?? 0,
            failed: c.failed ?? 0,
          };
        }),
      );
      const [expiring, outcomes] = await Promise.all([expiringPerDay(db), outcomesPerHour(db)]);
      chartCache = {
        at: Date.now(),
        data: { expiring, outcomes, queues, generatedAt: new Date().toISOString() },
      };
    }
    return reply.header('cache-control', 'no-store').send(chartCache.data);
  });

  // ── orders ──
  async function orderSearch(request: FastifyRequest) {
    const parsed = OrderQuery.safeParse(request.query);
    if (!parsed.success) return { params: {}, error: parsed.error.issues[0]?.message ?? 'bad filter' };
    const params = parsed.data;
    try {
      const filter = await toOrderFilter(db, params);
      if (!filter) return { params, error: `no tenant ${params.tenant}` };
      const result = await searchOrders(db, filter, params.cursor);
      const next = result.nextCursor
        ? `/admin/orders${queryString({ ...params, cursor: result.nextCursor })}`
        : null;
      return { params, markup: orderRows(result.rows, next) };
    } catch (error) {
      if (error instanceof BadFilter || error instanceof ApiError) return { params, error: error.message };
      throw error;
    }
  }

  app.get('/admin/orders', async (request, reply) => {
    const { params, markup, error } = await orderSearch(request);
    const { cursor: _cursor, ...filterParams } = params as Record<string, string | undefined>;
    const status = error ? 400 : 200;
    return send(
      reply.code(status),
      page(request, 'Orders', ordersPage(principalOf(request), filterParams, markup ?? html``, error)),
    );
  });

  app.get('/admin/orders/rows', async (request, reply) => {
    const { markup, error } = await orderSearch(request);
    return send(reply, markup ?? flash('error', error ?? 'bad filter'));
  });

  app.get('/admin/orders/:id', { schema: { params: IdParams } }, async (request, reply) => {
    const detail = await orderDetail(db, request.params.id);
    if (!detail) throw new ApiError(404, 'not_found', 'no such order');
    return send(
      reply,
      page(request, `Order ${detail.order.domains[0]}`, orderPage(principalOf(request), detail)),
    );
  });

  app.get('/admin/orders/:id/live', { schema: { params: IdParams } }, async (request, reply) => {
    const live = await orderLiveState(db, request.params.id);
    if (!live) throw new ApiError(404, 'not_found', 'no such order');
    return send(reply, orderLive(live.order));
  });

  app.get('/admin/orders/:id/timeline', { schema: { params: IdParams } }, async (request, reply) => {
    const live = await orderLiveState(db, request.params.id);
    if (!live) throw new ApiError(404, 'not_found', 'no such order');
    return send(reply, orderTimeline(live.order, live.events));
  });

  app.post('/admin/orders/:id/:action', async (request, reply) => {
    const { id, action } = request.params as { id: string; action: string };
    if (!IdParams.safeParse({ id }).success) throw new ApiError(404, 'not_found', 'no such order');
    if (action === 'retry') {
      const order = await retryOrder(
        { db, queues: deps.queues, enqueueTimeoutMs: deps.enqueueTimeoutMs },
        id,
        { actor: CONSOLE_ACTOR, log: request.log },
      );
      request.consoleAudit = {
        action: 'order.retry',
        subjectId: id,
        tenantId: order.tenantId,
        detail: { from: 'failed', to: order.status, run: order.run },
      };
      return send(reply, flash('ok', `Retried: the order is ${order.status} again (run ${order.run}).`));
    }
    if (action === 'cancel') {
      const order = await cancelOrder({ db }, id, { actor: CONSOLE_ACTOR });
      request.consoleAudit = {
        action: 'order.cancel',
        subjectId: id,
        tenantId: order.tenantId,
        detail: { to: order.status },
      };
      return send(reply, flash('ok', 'Cancelled.'));
    }
    if (action === 'renew') {
      const detail = await orderDetail(db, id);
      if (!detail) throw new ApiError(404, 'not_found', 'no such order');
      const current = await db.execute<{ id: string }>(
        sql`select id from certificates where tenant_id = ${detail.order.tenant_id}
          and domains_key = (select domains_key from orders where id = ${id}) and is_current`,
      );
      const certificateId = current.rows[0]?.id;
      if (!certificateId)
        throw new ApiError(
          409,
          'nothing_to_renew',
          'this order’s domain set has no current certificate to renew',
        );
      const result = await bulk.renew([certificateId]);
      request.consoleAudit = {
        action: 'certificate.renew',
        subjectId: certificateId,
        tenantId: detail.order.tenant_id,
        detail: { orderId: id, enqueued: result.enqueued, batchId: result.batchId ?? null },
      };
      return send(
        reply,
        result.enqueued
          ? flash('ok', `Renewal ordered (batch ${result.batchId}).`)
          : flash('error', 'A renewal or another order for this domain set is already active.'),
      );
    }
    throw new ApiError(404, 'not_found', 'no such action');
  });

  // ── bulk ──
  app.get('/admin/bulk/preview', async (request, reply) => {
    const parsed = BulkForm.safeParse(request.query);
    if (!parsed.success)
      throw new ApiError(400, 'validation_failed', parsed.error.issues[0]?.message ?? 'bad filter');
    const { action, expected: _expected, ...params } = parsed.data;
    const filter = await filterOrThrow(params);
    const preview = await bulkPreview(db, action, filter);
    return send(reply, bulkPreviewPanel(action, queryString(params), preview));
  });

  app.post('/admin/bulk', async (request, reply) => {
    const parsed = BulkForm.safeParse({ ...(request.query as object), ...(request.body as object) });
    if (!parsed.success)
      throw new ApiError(400, 'validation_failed', parsed.error.issues[0]?.message ?? 'bad filter');
    const { action, expected, ...params } = parsed.data;
    const filter = await filterOrThrow(params);
    const job = await bulk.start(action, filter);
    request.consoleAudit = {
      action: `bulk.${action}`,
      subjectId: job.id,
      detail: { count: job.total, expected: expected ?? null, filter: params },
    };
    if (expected !== undefined && job.total !== expected)
      request.log.info(
        { expected, total: job.total },
        'bulk action: the matching set changed since its preview',
      );
    return send(reply, bulkProgressPanel(await bulk.progress(job)));
  });

  app.get('/admin/bulk/:id', { schema: { params: IdParams } }, async (request, reply) => {
    const job = bulk.get(request.params.id);
    if (!job) throw new ApiError(404, 'not_found', 'no such bulk action (they are kept for an hour)');
    return send(reply, bulkProgressPanel(await bulk.progress(job)));
  });

  async function filterOrThrow(params: Parameters<typeof toOrderFilter>[1]) {
    try {
      const filter = await toOrderFilter(db, params);
      if (!filter) throw new ApiError(400, 'validation_failed', `no tenant ${params.tenant}`);
      return filter;
    } catch (error) {
      if (error instanceof BadFilter) throw new ApiError(400, 'validation_failed', error.message);
      throw error;
    }
  }

  // ── certificates ──
  app.get('/admin/certificates', async (request, reply) => {
    const parsed = CertificateQuery.safeParse(request.query);
    if (!parsed.success)
      return send(
        reply.code(400),
        page(request, 'Certificates', certificatesPage({}, html``, parsed.error.issues[0]?.message)),
      );
    const params = parsed.data;
    try {
      const filter = await toCertificateFilter(db, params);
      if (!filter)
        return send(
          reply.code(400),
          page(request, 'Certificates', certificatesPage(params, html``, `no tenant ${params.tenant}`)),
        );
      const result = await searchCertificates(db, filter, params.cursor);
      const { cursor: _c, ...keep } = params;
      const next = result.nextCursor
        ? `/admin/certificates${queryString({ ...keep, moved: keep.moved ? 'true' : undefined, cursor: result.nextCursor })}`
        : null;
      return send(
        reply,
        page(request, 'Certificates', certificatesPage(keep, certificateRows(result.rows, next))),
      );
    } catch (error) {
      if (!(error instanceof BadFilter || error instanceof ApiError)) throw error;
      return send(
        reply.code(400),
        page(request, 'Certificates', certificatesPage(params, html``, error.message)),
      );
    }
  });

  app.get('/admin/certificates/:id', { schema: { params: IdParams } }, async (request, reply) => {
    const detail = await certificateDetail(db, request.params.id);
    if (!detail) throw new ApiError(404, 'not_found', 'no such certificate');
    return send(
      reply,
      page(
        request,
        `Certificate ${detail.certificate.domains[0]}`,
        certificatePage(principalOf(request), detail),
      ),
    );
  });

  app.post('/admin/certificates/:id/retire', { schema: { params: IdParams } }, async (request, reply) => {
    const result = await retireCertificate(db, deps.queues, {
      certificateId: request.params.id,
      actor: CONSOLE_ACTOR,
    });
    if (result.retired)
      await writeAudit(db, request, {
        action: 'certificate.retire',
        tenantId: result.certificate.tenantId,
        subjectId: result.certificate.id,
        detail: { cancelledOrderId: result.cancelledOrderId },
      }).catch((error: unknown) => request.log.warn({ err: error }, 'could not write the audit row'));
    return send(
      reply,
      flash(
        'ok',
        result.retired
          ? `Retired${result.cancelledOrderId ? `; its active order ${result.cancelledOrderId} was cancelled` : ''}.`
          : 'Already retired.',
      ),
    );
  });

  app.post('/admin/certificates/:id/renew', { schema: { params: IdParams } }, async (request, reply) => {
    const detail = await certificateDetail(db, request.params.id);
    if (!detail) throw new ApiError(404, 'not_found', 'no such certificate');
    if (!detail.certificate.is_current)
      throw new ApiError(409, 'not_current', 'only the current certificate of a domain set is renewed');
    const result = await bulk.renew([detail.certificate.id]);
    request.consoleAudit = {
      action: 'certificate.renew',
      subjectId: detail.certificate.id,
      tenantId: detail.certificate.tenant_id,
      detail: { enqueued: result.enqueued, batchId: result.batchId ?? null },
    };
    return send(
      reply,
      result.enqueued
        ? flash('ok', `Renewal ordered (batch ${result.batchId}).`)
        : flash('error', 'A renewal or another order for this domain set is already active.'),
    );
  });

  // ── edges ──
  app.get('/admin/edge-tokens', async (request, reply) => {
    const rows = await db
      .select()
      .from(edgeTokens)
      .orderBy(sql`${edgeTokens.revokedAt} is not null`, sql`${edgeTokens.lastSeenAt} asc nulls first`);
    return send(reply, page(request, 'Edges', edgeTokensPage(rows)));
  });

  // ── tenants ──
  app.get('/admin/tenants/:id', async (request, reply) => {
    const tenant = await tenantByIdOrName(db, (request.params as { id: string }).id);
    if (!tenant) throw new ApiError(404, 'not_found', 'no such tenant');
    const detail = await tenantDetail(db, tenant.id);
    return send(
      reply,
      page(request, `Tenant ${tenant.name}`, tenantPage(principalOf(request), tenant, detail)),
    );
  });

  app.post('/admin/tenants/:id/:action', async (request, reply) => {
    const { id, action } = request.params as { id: string; action: string };
    if (!IdParams.safeParse({ id }).success) throw new ApiError(404, 'not_found', 'no such tenant');
    const counts = (affected: Record<string, number>) =>
      Object.entries(affected)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ');
    let message: string;
    if (action === 'suspend' || action === 'suspend-stop-serving') {
      const r = await suspendTenant(db, {
        tenantId: id,
        actor: CONSOLE_ACTOR,
        stopServing: action !== 'suspend',
      });
      message = r.changed
        ? `Suspended: ${counts({ ordersCancelled: r.ordersCancelled, certificatesServed: r.certificatesServed, certificatesWithdrawn: r.certificatesWithdrawn })}.`
        : 'Already suspended.';
    } else if (action === 'resume') {
      const r = await resumeTenant(db, { tenantId: id, actor: CONSOLE_ACTOR });
      message = r.changed ? `Resumed: certificatesRestored ${r.certificatesRestored}.` : 'Not suspended.';
    } else if (action === 'delete') {
      const r = await deleteTenant(db, deps.queues, { tenantId: id, actor: CONSOLE_ACTOR });
      if (r.edgeTokensRevoked) app.delivery.edgeTokens.forgetAll();
      message = r.changed
        ? `Deleted: ${counts({ certificatesRetired: r.certificatesRetired, ordersCancelled: r.ordersCancelled, edgeTokensRevoked: r.edgeTokensRevoked })}.`
        : 'Already deleted.';
    } else throw new ApiError(404, 'not_found', 'no such action');
    await app.invalidateTenantTokens(id);
    await writeAudit(db, request, {
      action: `tenant.${action === 'suspend-stop-serving' ? 'suspend' : action}`,
      tenantId: id,
      subjectId: id,
      detail: { message },
    }).catch((error: unknown) => request.log.warn({ err: error }, 'could not write the audit row'));
    return send(reply, flash('ok', message));
  });
};
