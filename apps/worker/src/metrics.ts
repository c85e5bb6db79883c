import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** The worker's Prometheus metrics; one registry per process (tests create their own). */
export function createWorkerMetrics(registry = new Registry()) {
  collectDefaultMetrics({ register: registry, prefix: 'certq_worker_' });
  return {
    registry,
    jobs: new Counter({
      name: 'certq_jobs_total',
      help: 'Stage jobs handled, by stage and outcome (advanced, delayed, stale, failed_order, error).',
      labelNames: ['stage', 'outcome'] as const,
      registers: [registry],
    }),
    jobDuration: new Histogram({
      name: 'certq_job_duration_seconds',
      help: 'Time spent handling one stage job, upstream call included.',
      labelNames: ['stage'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    upstreamRequests: new Counter({
      name: 'certq_upstream_requests_total',
      help: 'Requests to httpsok by endpoint and outcome (ok, or the error kind).',
      labelNames: ['endpoint', 'outcome'] as const,
      registers: [registry],
    }),
    upstreamDuration: new Histogram({
      name: 'certq_upstream_request_duration_seconds',
      help: 'Latency of requests to httpsok by endpoint.',
      labelNames: ['endpoint'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15],
      registers: [registry],
    }),
    dnsChecks: new Counter({
      name: 'certq_dns_checks_total',
      help: 'Local DNS checks of one domain by result: ok, missing, wrong_target, lookup_failed (CNAME) and caa_forbidden, caa_lookup_failed (CAA).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    upstreamDvSaved: new Counter({
      name: 'certq_upstream_dv_saved_total',
      help: 'Verification rounds where the local DNS check showed a domain not ready, so httpsok was not asked (one dv call saved each).',
      registers: [registry],
    }),
    caChanges: new Counter({
      name: 'certq_ca_changes_total',
      help: 'Orders handed to their next CA, by why: caa (CAA forbids the CA) or rejected (the application ended with status 3).',
      labelNames: ['why'] as const,
      registers: [registry],
    }),
    reconcilerRepairs: new Counter({
      name: 'certq_reconciler_repairs_total',
      help: 'Active orders whose stage job was missing from Redis and was put back by the reconciler.',
      registers: [registry],
    }),
    applyUnknownOutcome: new Counter({
      name: 'certq_apply_unknown_outcome_total',
      help: 'Apply calls repeated because an earlier call for the same order ended with no known outcome (crash, timeout).',
      registers: [registry],
    }),
    ordersFinished: new Counter({
      name: 'certq_orders_finished_total',
      help: 'Orders that reached a terminal status, by status and kind.',
      labelNames: ['status', 'kind'] as const,
      registers: [registry],
    }),
    renewalOrdersCreated: new Counter({
      name: 'certq_renewal_orders_created_total',
      help: 'Renewal orders created by the renewal scanner.',
      registers: [registry],
    }),
    renewalsDue: new Gauge({
      name: 'certq_renewal_scan_due',
      help: 'Certificates due for renewal at the last scan: inside RENEW_BEFORE_DAYS, past their backoff, no active order.',
      registers: [registry],
    }),
    renewalScanDuration: new Histogram({
      name: 'certq_renewal_scan_duration_seconds',
      help: 'Wall time of one renewal scan (creating and enqueueing its orders included).',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [registry],
    }),
    webhookDeliveries: new Counter({
      name: 'certq_webhook_deliveries_total',
      help: 'Webhook POST attempts by outcome: delivered, retry (will try again), given_up (last attempt failed), dropped (webhook removed).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    webhookRelayRequeued: new Counter({
      name: 'certq_webhook_relay_requeued_total',
      help: 'Pending webhook deliveries whose job was missing from Redis and was put back by the relay.',
      registers: [registry],
    }),
  };
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
