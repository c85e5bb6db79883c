import { certificateStatus, ORDER_STATUSES } from '@certq/core';
import { type ConsolePrincipal, canAct } from './auth';
import { BULK_CAP, type BulkAction, type BulkProgress } from './bulk';
import { type Html, html, queryString } from './html';
import type {
  CertificateDetail,
  CertificateRow,
  ConsoleTenant,
  OrderDetail,
  OrderRow,
  tenantDetail,
} from './queries';

/** A certificate's status (derived in @certq/core) with its reason as the tooltip. */
function lifeOf(c: CertificateRow) {
  return certificateStatus(
    {
      isCurrent: c.is_current,
      state: c.state,
      retiredReason: c.retired_reason,
      notAfter: new Date(c.not_after),
      orderActive: c.order_active,
    },
    new Date(),
  );
}
const certificateBadge = (c: CertificateRow) => {
  const { status, reason } = lifeOf(c);
  return html`<span class="status s-${status}" title="${reason}">${status}</span>`;
};

/**
 * The console's pages, rendered on the server. htmx (from our node_modules) swaps fragments for the
 * live parts (hx-trigger="every …"), posts actions with a confirmation (hx-confirm) and follows bulk
 * jobs; Chart.js draws the charts from /admin/api/charts. No inline script: the CSP stays strict.
 */

const when = (d: Date | string | null | undefined) =>
  d
    ? new Date(d)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d{3}Z$/, 'Z')
    : '—';

export const statusBadge = (status: string) => html`<span class="status s-${status}">${status}</span>`;

export function layout(principal: ConsolePrincipal, title: string, body: Html): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${title} — certq console</title>
<link rel="stylesheet" href="/admin/assets/console.css">
<script src="/admin/assets/htmx.min.js" defer></script>
<script src="/admin/assets/chart.umd.min.js" defer></script>
<script src="/admin/assets/console.js" defer></script>
</head><body>
<header><a class="brand" href="/admin">certq</a>
<nav><a href="/admin">Overview</a><a href="/admin/orders">Orders</a><a href="/admin/certificates">Certificates</a>
<a href="/admin/edge-tokens">Edges</a><a href="/admin/queues">Queues</a><a href="/docs">API</a><a href="/metrics">Metrics</a></nav>
<span class="who" data-role="${principal.kind}">${
    canAct(principal) ? 'operator' : 'viewer — read only'
  }</span></header>
<div id="flash" aria-live="polite"></div>
<main>${body}</main></body></html>`;
}

export function flash(kind: 'ok' | 'error', message: string): Html {
  return html`<div class="flash ${kind}" role="${kind === 'error' ? 'alert' : 'status'}">${message}</div>`;
}

// ─── overview ─────────────────────────────────────────────────────────────────────────────────────

/** The capacity projection (GET /v1/stats `capacity`), as /admin shows it. */
export interface CapacityView {
  ceilingRps: number;
  projected: { day: string; renewals: number; upstreamCalls: number }[];
  peakShare: number;
}

/**
 * Projected upstream calls per day against the ceiling (UPSTREAM_MAX_RPS × 86400) and its 80 % alert
 * line, as an SVG drawn on the server: presentation attributes only, so the CSP needs no inline style.
 */
export function capacityChart(capacity: CapacityView): Html {
  const daily = capacity.ceilingRps * 86_400;
  const top = Math.max(daily, ...capacity.projected.map((d) => d.upstreamCalls)) * 1.05;
  const width = 600;
  const height = 160;
  const slot = width / Math.max(1, capacity.projected.length);
  const y = (calls: number) => height - (calls / top) * height;
  const bars = capacity.projected.map((d, i) => {
    const share = d.upstreamCalls / daily;
    return html`<rect class="${share > 0.8 ? 'over' : 'under'}" x="${(i * slot + 1).toFixed(1)}" y="${y(d.upstreamCalls).toFixed(1)}" width="${(slot - 2).toFixed(1)}" height="${(height - y(d.upstreamCalls)).toFixed(1)}"><title>${d.day}: ${d.renewals} renewals, ${d.upstreamCalls} upstream calls (${(share * 100).toFixed(1)} % of the ceiling)</title></rect>`;
  });
  return html`<figure class="capacity"><figcaption>Renewal demand vs the upstream ceiling, next ${capacity.projected.length} days (peak ${(capacity.peakShare * 100).toFixed(1)} % of ${capacity.ceilingRps} req/s)</figcaption>
<svg viewBox="0 0 ${width} ${height}" role="img" aria-label="projected upstream calls per day and the ceiling">${bars}
<line class="ceiling" x1="0" x2="${width}" y1="${y(daily).toFixed(1)}" y2="${y(daily).toFixed(1)}"><title>ceiling: ${daily} calls a day</title></line>
<line class="alert-line" x1="0" x2="${width}" y1="${y(daily * 0.8).toFixed(1)}" y2="${y(daily * 0.8).toFixed(1)}"><title>80 %: the capacity alert</title></line>
</svg></figure>`;
}

export function overviewPage(
  byStatus: Record<string, number>,
  tenants: { id: string; name: string }[],
  capacity?: CapacityView,
): Html {
  return html`<h1>Overview</h1>
${searchForms({})}
<section class="counts">${ORDER_STATUSES.map(
    (s) =>
      html`<a class="count" href="/admin/orders${queryString({ status: s })}">${statusBadge(s)}<b>${byStatus[s] ?? 0}</b></a>`,
  )}</section>
<section class="charts" data-charts="/admin/api/charts">
<figure><figcaption>Certificates expiring per day, next 90 days <small class="expired"></small></figcaption><canvas id="chart-expiring"></canvas></figure>
<figure><figcaption>Orders issued and failed per hour, last 7 days</figcaption><canvas id="chart-outcomes"></canvas></figure>
<figure><figcaption>Queue depth</figcaption><canvas id="chart-queues"></canvas></figure>
</section>
${capacity ? capacityChart(capacity) : html``}
<h2>Tenants</h2><p class="tenants">${tenants.map(
    (t) => html`<a href="/admin/tenants/${t.id}">${t.name}</a> `,
  )}</p>`;
}

export interface OrderSearchParams {
  q?: string;
  tenant?: string;
  status?: string;
  kind?: string;
  from?: string;
  to?: string;
}

function searchForms(params: OrderSearchParams & { within?: string | number }): Html {
  return html`<form class="search" action="/admin/orders" method="get">
<label>Domain <input name="q" value="${params.q ?? ''}" placeholder="example.com, shop.exa*, *.example.com" size="28"></label>
<label>Tenant <input name="tenant" value="${params.tenant ?? ''}" placeholder="name or id" size="14"></label>
<label>Status <select name="status"><option value="">any</option>${ORDER_STATUSES.map(
    (s) => html`<option${params.status === s ? html` selected` : html``}>${s}</option>`,
  )}</select></label>
<label>Kind <select name="kind"><option value="">any</option>${['new', 'renewal'].map(
    (k) => html`<option${params.kind === k ? html` selected` : html``}>${k}</option>`,
  )}</select></label>
<label>Created from <input type="datetime-local" name="from" value="${params.from ?? ''}"></label>
<label>to <input type="datetime-local" name="to" value="${params.to ?? ''}"></label>
<button type="submit">Search orders</button>
<button type="submit" formaction="/admin/certificates">Search certificates</button>
</form>`;
}

// ─── orders ───────────────────────────────────────────────────────────────────────────────────────

export function ordersPage(
  principal: ConsolePrincipal,
  params: OrderSearchParams,
  results: Html,
  error?: string,
): Html {
  const filter = queryString({ ...params });
  return html`<h1>Orders</h1>
${searchForms(params)}
${error ? flash('error', error) : html``}
<section class="bulk" id="bulk">
<span>Every order matching this filter:</span>
${(['retry', 'cancel', 'renew'] as BulkAction[]).map(
  (action) =>
    html`<button class="bulk-${action}" hx-get="/admin/bulk/preview${filter}${filter ? '&' : '?'}action=${action}" hx-target="#bulk-panel">${bulkLabel(action)}…</button>`,
)}
<div id="bulk-panel"></div>
</section>
<div id="results" hx-get="/admin/orders/rows${filter}" hx-trigger="every 5s" hx-swap="innerHTML">${results}</div>
${canAct(principal) ? html`` : html`<p class="note">Signed in as the viewer: actions are refused.</p>`}`;
}

const bulkLabel = (action: BulkAction) =>
  ({ retry: 'Retry failed', cancel: 'Cancel active', renew: 'Renew now' })[action];

export function orderRows(rows: OrderRow[], nextLink: string | null): Html {
  if (rows.length === 0) return html`<p class="empty">No orders match.</p>`;
  return html`<table class="orders"><thead><tr><th>created</th><th>domains</th><th>tenant</th><th>kind</th><th>status</th><th>run</th><th>last error</th></tr></thead>
<tbody>${rows.map(
    (r) => html`<tr data-order="${r.id}"><td>${when(r.created_at)}</td>
<td><a href="/admin/orders/${r.id}">${r.domains.join(', ')}</a></td>
<td><a href="/admin/tenants/${r.tenant_id}">${r.tenant_name}</a></td><td>${r.kind}</td><td>${statusBadge(r.status)}</td>
<td>${r.run}</td><td class="error">${r.last_error ?? ''}</td></tr>`,
  )}</tbody></table>
${nextLink ? html`<p><a class="next" href="${nextLink}">Next page →</a></p>` : html``}`;
}

// ─── bulk ─────────────────────────────────────────────────────────────────────────────────────────

export function bulkPreviewPanel(
  action: BulkAction,
  filterQuery: string,
  preview: { matching: { count: number; more: boolean }; eligible: { count: number; more: boolean } },
): Html {
  const noun =
    action === 'renew'
      ? 'current certificates of these orders will be renewed'
      : action === 'retry'
        ? 'failed orders will be retried'
        : 'active orders will be cancelled';
  const matching = `${preview.matching.count}${preview.matching.more ? '+' : ''}`;
  if (preview.eligible.more)
    return html`<div class="preview">More than ${BULK_CAP} ${noun.split(' will')[0]} match: narrow the filter.</div>`;
  if (preview.eligible.count === 0)
    return html`<div class="preview">${matching} orders match; none of them can be ${action === 'renew' ? 'renewed' : action === 'retry' ? 'retried' : 'cancelled'}.</div>`;
  return html`<form class="preview" hx-post="/admin/bulk${filterQuery}" hx-target="#bulk-panel"
  hx-confirm="${bulkLabel(action)}: ${preview.eligible.count} — are you sure?">
<input type="hidden" name="action" value="${action}">
<input type="hidden" name="expected" value="${preview.eligible.count}">
<span class="bulk-count">${matching} orders match: <b>${preview.eligible.count}</b> ${noun}.</span>
<button type="submit" class="confirm">${bulkLabel(action)} ${preview.eligible.count}</button></form>`;
}

export function bulkProgressPanel({ job, statuses }: BulkProgress): Html {
  const pct = job.total ? Math.round((job.done / job.total) * 100) : 100;
  const settled =
    job.finished && !(statuses['in flight'] || ['verifying', 'applying', 'issuing'].some((s) => statuses[s]));
  return html`<div class="progress" data-job="${job.id}" data-finished="${String(job.finished)}"
  ${settled ? html`` : html`hx-get="/admin/bulk/${job.id}" hx-trigger="every 1s" hx-swap="outerHTML"`}>
<div>${bulkLabel(job.action)}: <b class="done">${job.done}</b> of <b class="total">${job.total}</b> ${job.finished ? 'done' : 'in progress'}</div>
<progress max="100" value="${pct}"></progress>
${Object.keys(job.refused).length ? html`<div>Not applied: ${Object.entries(job.refused).map(([code, n]) => html`<span class="refused">${code} ${n}</span> `)}</div>` : html``}
${job.error ? flash('error', job.error) : html``}
<div class="statuses">Now: ${Object.entries(statuses).map(
    ([status, n]) => html`<span class="st" data-status="${status}">${statusBadge(status)} ${n}</span> `,
  )}</div></div>`;
}

// ─── one order ────────────────────────────────────────────────────────────────────────────────────

export function orderPage(principal: ConsolePrincipal, detail: OrderDetail): Html {
  const { order, dns, events, certificate } = detail;
  const hasDiagnosis = dns.some((d) => 'status' in d || 'reason' in d);
  return html`<h1>Order <code>${order.id}</code></h1>
<div id="order-live" hx-get="/admin/orders/${order.id}/live" hx-trigger="every 2s" hx-swap="innerHTML">${orderLive(order)}</div>
<section class="actions">
${['retry', 'cancel', 'renew'].map(
  (action) =>
    html`<button class="action-${action}" hx-post="/admin/orders/${order.id}/${action}" hx-target="#flash"
  hx-confirm="${action[0]!.toUpperCase()}${action.slice(1)} order ${order.domains.join(', ')}?">${action}</button>`,
)}
${canAct(principal) ? html`` : html`<span class="note">viewer: actions are refused</span>`}
</section>
<dl class="facts">
<dt>Tenant</dt><dd><a href="/admin/tenants/${order.tenant_id}">${order.tenant_name}</a></dd>
<dt>Domains</dt><dd>${order.domains.join(', ')}</dd>
<dt>Kind</dt><dd>${order.kind}${order.renewal_of_certificate_id ? html` of <a href="/admin/certificates/${order.renewal_of_certificate_id}">certificate</a>` : html``}${order.renewal_batch_id ? html` (batch <code>${String(order.renewal_batch_id)}</code>)` : html``}</dd>
<dt>Algorithm / CA</dt><dd>${String(order.algorithm)} / ${String(order.ca)}</dd>
<dt>Application</dt><dd>${order.apply_id ? String(order.apply_id) : '—'}</dd>
<dt>Runs</dt><dd>${String(order.run)}</dd>
<dt>Created</dt><dd>${when(order.created_at as Date)}</dd>
<dt>Certificate</dt><dd class="certificate">${
    certificate
      ? html`<a href="/admin/certificates/${certificate.id}">${certificate.domains.join(', ')}</a> — valid until ${when(certificate.not_after)}${certificate.is_current ? html`` : html` (superseded)`}`
      : '—'
  }</dd></dl>
<h2>DNS records the tenant must create</h2>
${
  dns.length === 0
    ? html`<p class="empty">Not known yet: they come with the first verification.</p>`
    : html`<table class="dns"><thead><tr><th>domain</th><th>CNAME name</th><th>must point to</th><th>upstream says</th>${
        hasDiagnosis
          ? html`<th>our check</th><th>found</th><th>what to do</th><th>checked</th>`
          : html`<th>checked</th>`
      }</tr></thead><tbody>${dns.map(
        (
          d,
        ) => html`<tr data-domain="${String(d.domain)}"><td>${String(d.domain)}</td><td><code>${String(d.host)}</code></td>
<td><code>${String(d.host_value)}</code></td><td>${d.valid ? html`<span class="ok">valid</span>` : html`<span class="bad">not yet</span>`}</td>${
          hasDiagnosis
            ? html`<td class="diagnosis">${d.status ? statusBadge(String(d.status)) : '—'}</td><td><code>${d.found == null ? '—' : String(d.found)}</code></td><td>${d.reason == null ? '' : String(d.reason)}</td>`
            : html``
        }<td>${when(d.checked_at as string)}</td></tr>`,
      )}</tbody></table>`
}
<h2>Timeline</h2>
<div id="order-timeline" hx-get="/admin/orders/${order.id}/timeline" hx-trigger="every 3s" hx-swap="innerHTML">${orderTimeline(order, events)}</div>`;
}

/** The part of the order page that refreshes itself: status, progress, last error. */
export function orderLive(order: {
  status: string;
  progress?: unknown;
  last_error: string | null;
  updated_at?: unknown;
}): Html {
  return html`<p class="live">Status ${statusBadge(order.status)} <span class="progress-pct">${String(order.progress ?? 0)}%</span>
<small>updated ${when(order.updated_at as Date)}</small></p>
${order.last_error ? html`<p class="last-error">Last error: <span class="error">${order.last_error}</span></p>` : html``}`;
}

/** Every event of order_events, oldest first, with the upstream trace ids; refreshes itself too. */
export function orderTimeline(
  order: { created_at?: unknown; [key: string]: unknown },
  events: OrderDetail['events'],
): Html {
  return html`<ol class="timeline"><li data-event="created"><time>${when(order.created_at as Date)}</time> <b>created</b></li>${events.map(
    (e) => {
      const detail = e.detail ?? {};
      const trace = typeof detail.traceId === 'string' ? detail.traceId : null;
      const rest = Object.fromEntries(Object.entries(detail).filter(([k]) => k !== 'traceId'));
      return html`<li data-event="${e.type}"><time>${when(e.at)}</time> <b>${e.type}</b>${
        e.from_status || e.to_status ? html` ${e.from_status ?? '·'} → ${e.to_status ?? '·'}` : html``
      }${trace ? html` <span class="trace">upstream trace <code>${trace}</code></span>` : html``}${
        Object.keys(rest).length ? html` <code class="detail">${JSON.stringify(rest)}</code>` : html``
      }</li>`;
    },
  )}</ol>`;
}

// ─── certificates ─────────────────────────────────────────────────────────────────────────────────

export function certificatesPage(
  params: OrderSearchParams & { within?: string | number; moved?: boolean },
  results: Html,
  error?: string,
): Html {
  return html`<h1>Certificates</h1>
${searchForms(params)}
<form class="search" action="/admin/certificates" method="get">
<input type="hidden" name="q" value="${params.q ?? ''}"><input type="hidden" name="tenant" value="${params.tenant ?? ''}">
<label>Expiring within <input name="within" value="${params.within ?? ''}" size="4"> days</label>
<label><input type="checkbox" name="moved" value="true"${params.moved ? html` checked` : html``}> moved away only</label><button type="submit">Filter</button></form>
${error ? flash('error', error) : html``}
<div id="results">${results}</div>`;
}

export function certificateRows(rows: CertificateRow[], nextLink: string | null): Html {
  if (rows.length === 0) return html`<p class="empty">No current certificates match.</p>`;
  return html`<table class="certificates"><thead><tr><th>expires</th><th>domains</th><th>status</th><th>tenant</th><th>CA</th><th>fingerprint</th></tr></thead>
<tbody>${rows.map(
    (
      r,
    ) => html`<tr><td>${when(r.not_after)}</td><td><a href="/admin/certificates/${r.id}">${r.domains.join(', ')}</a></td><td>${certificateBadge(r)}</td>
<td><a href="/admin/tenants/${r.tenant_id}">${r.tenant_name}</a></td><td>${r.ca ?? 'uploaded'}</td><td><code>${r.fingerprint.slice(0, 23)}…</code></td></tr>`,
  )}</tbody></table>
${nextLink ? html`<p><a class="next" href="${nextLink}">Next page →</a></p>` : html``}`;
}

export function certificatePage(principal: ConsolePrincipal, detail: CertificateDetail): Html {
  const { certificate: c, leaf, history, chainLength } = detail;
  return html`<h1>Certificate <code>${c.id}</code></h1>
<section class="actions"><button class="action-renew" hx-post="/admin/certificates/${c.id}/renew" hx-target="#flash"
  hx-confirm="Renew ${c.domains.join(', ')} now?">renew now</button>
${
  c.is_current
    ? html`<button class="action-retire" hx-post="/admin/certificates/${c.id}/retire" hx-target="#flash"
  hx-confirm="Retire ${c.domains.join(', ')}? Renewals stop and TLS servers stop presenting it.">retire</button>`
    : html``
}
${canAct(principal) ? html`` : html`<span class="note">viewer: actions are refused</span>`}</section>
<dl class="facts">
<dt>Tenant</dt><dd><a href="/admin/tenants/${c.tenant_id}">${c.tenant_name}</a></dd>
<dt>SANs</dt><dd class="sans">${leaf ? leaf.subjectAltName.join(', ') : c.domains.join(', ')}</dd>
<dt>Issuer</dt><dd>${leaf?.issuer.replace(/\n/g, ', ') ?? '—'} (${c.ca}, chain of ${chainLength})</dd>
<dt>Valid</dt><dd>${when(c.not_before)} → ${when(c.not_after)}</dd>
<dt>Fingerprint (SHA-256)</dt><dd><code>${c.fingerprint}</code></dd>
<dt>Serial</dt><dd><code>${leaf?.serialNumber ?? '—'}</code></dd>
<dt>Algorithm</dt><dd>${c.algorithm}</dd>
<dt>Status</dt><dd>${certificateBadge(c)} ${lifeOf(c).reason}${c.moved_at ? html` (moved ${when(c.moved_at)})` : html``}</dd>
<dt>Issued by order</dt><dd>${c.order_id ? html`<a href="/admin/orders/${c.order_id}">${c.order_id}</a>` : 'none: uploaded by its tenant'}</dd>
<dt>Private key</dt><dd>never shown here (GET /v1/certificates/{id}/private-key, audited)</dd></dl>
<h2>Renewal history</h2>
<table class="history"><thead><tr><th>issued</th><th>valid until</th><th>order</th><th>kind</th><th>status</th></tr></thead>
<tbody>${history.map(
    (
      h,
    ) => html`<tr${h.id === c.id ? html` class="this"` : html``}><td>${when(h.not_before)}</td><td><a href="/admin/certificates/${h.id}">${when(h.not_after)}</a></td>
<td>${h.order_id ? html`<a href="/admin/orders/${h.order_id}">${h.order_id.slice(0, 8)}</a>` : 'uploaded'}</td><td>${h.order_kind ?? ''}</td><td>${certificateBadge(h)}</td></tr>`,
  )}</tbody></table>`;
}

// ─── tenant ───────────────────────────────────────────────────────────────────────────────────────

export function tenantPage(
  principal: ConsolePrincipal,
  tenant: ConsoleTenant,
  detail: Awaited<ReturnType<typeof tenantDetail>>,
): Html {
  const byStatus = Object.fromEntries(detail.byStatus.map((r) => [r.status, r.n]));
  const expiry = Object.fromEntries(detail.expiry.map((r) => [r.bucket, r.n]));
  const life = tenant.deleted_at ? 'deleted' : tenant.suspended_at ? 'suspended' : 'active';
  const action = (name: string, confirm: string) =>
    html`<button class="action-${name}" hx-post="/admin/tenants/${tenant.id}/${name}" hx-target="#flash" hx-confirm="${confirm}">${name}</button>`;
  return html`<h1>Tenant ${tenant.name} ${statusBadge(life)}</h1>
<p><code>${tenant.id}</code> · created ${when(tenant.created_at)} · webhook ${tenant.webhook_url ? 'configured' : 'none'}${
    tenant.suspended_at && !tenant.deleted_at
      ? html` · suspended ${when(tenant.suspended_at)}${tenant.stop_serving ? ' (its certificates are not served)' : ' (its certificates are still served)'}`
      : html``
  }${tenant.deleted_at ? html` · deleted ${when(tenant.deleted_at)}` : html``}</p>
${
  tenant.deleted_at
    ? html``
    : html`<section class="actions">${
        tenant.suspended_at
          ? action('resume', `Resume ${tenant.name}? Its writes and renewals start again.`)
          : html`${action('suspend', `Suspend ${tenant.name}? Its writes are refused, its orders cancelled and renewals stop; its certificates are still served.`)}${action('suspend-stop-serving', `Suspend ${tenant.name} and stop serving its certificates until it is resumed?`)}`
      }${action('delete', `Delete ${tenant.name} for good? Every certificate is retired and its tokens revoked. This cannot be undone.`)}
${canAct(principal) ? html`` : html`<span class="note">viewer: actions are refused</span>`}</section>`
}
<p><a href="/admin/certificates${queryString({ tenant: tenant.id, moved: 'true' })}">Moved domains of this tenant</a></p>
<h2>Orders by status</h2><section class="counts">${ORDER_STATUSES.map(
    (s) =>
      html`<a class="count" href="/admin/orders${queryString({ tenant: tenant.id, status: s })}">${statusBadge(s)}<b>${byStatus[s] ?? 0}</b></a>`,
  )}</section>
<h2>Certificates by expiry</h2><section class="counts">${[
    'expired',
    '0–7 days',
    '8–30 days',
    '31–60 days',
    '61+ days',
  ].map((b) => html`<span class="count"><span>${b}</span><b>${expiry[b] ?? 0}</b></span>`)}</section>
${certificateRows(detail.soonest, `/admin/certificates${queryString({ tenant: tenant.id })}`)}
<h2>Webhook health (7 days)</h2>
<p class="webhook-health">delivered ${detail.health.delivered} · failed <b>${detail.health.failed}</b> · pending ${detail.health.pending}</p>
${
  detail.deliveries.length
    ? html`<table class="deliveries"><thead><tr><th>created</th><th>event</th><th>status</th><th>attempts</th><th>last answer</th></tr></thead><tbody>${detail.deliveries.map(
        (
          d,
        ) => html`<tr><td>${when(d.created_at)}</td><td>${d.event}</td><td>${statusBadge(d.status)}</td><td>${d.attempts}</td>
<td>${d.last_status_code ?? ''} <span class="error">${d.last_error ?? ''}</span></td></tr>`,
      )}</tbody></table>`
    : html`<p class="empty">No deliveries.</p>`
}`;
}

// ─── edges ────────────────────────────────────────────────────────────────────────────────────────

export interface EdgeTokenRow {
  id: string;
  name: string;
  tenantIds: string[] | null;
  lastSeenAt: Date | null;
  useCount: number;
  revokedAt: Date | null;
}

/** Each edge token's last contact, oldest first: a stale edge shows at the top. */
export function edgeTokensPage(rows: EdgeTokenRow[], now = Date.now()): Html {
  const age = (d: Date | null) => {
    if (!d) return 'never';
    const minutes = Math.floor((now - d.getTime()) / 60_000);
    return minutes < 1 ? 'under a minute ago' : `${minutes} min ago`;
  };
  const stale = (r: EdgeTokenRow) =>
    !r.revokedAt && (!r.lastSeenAt || now - r.lastSeenAt.getTime() > 5 * 60_000);
  return html`<h1>Edges</h1>
<p class="note">Last contact of each edge token (a TLS route request or a change-feed poll), to the minute. An agent
following the feed is seen at least every minute; one unseen for more than 5 minutes is marked stale.</p>
${
  rows.length === 0
    ? html`<p class="empty">No edge tokens (POST /v1/edge-tokens).</p>`
    : html`<table class="edge-tokens"><thead><tr><th>name</th><th>tenants</th><th>last contact</th><th>requests</th><th>state</th></tr></thead>
<tbody>${rows.map(
        (
          r,
        ) => html`<tr class="${stale(r) ? 'stale' : ''}"><td>${r.name}</td><td>${r.tenantIds ? r.tenantIds.length : 'all'}</td>
<td title="${when(r.lastSeenAt)}">${age(r.lastSeenAt)}</td><td>${r.useCount}</td>
<td>${r.revokedAt ? 'revoked' : stale(r) ? html`<strong>stale</strong>` : 'ok'}</td></tr>`,
      )}</tbody></table>`
}`;
}

export function messagePage(title: string, message: string): Html {
  return html`<h1>${title}</h1><p>${message}</p><p><a href="/admin">Back to the overview</a></p>`;
}
