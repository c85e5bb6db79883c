import { collectProcessMetrics } from '@certq/core/process-metrics';
import {
  Counter,
  type CounterConfiguration,
  Gauge,
  Histogram,
  type HistogramConfiguration,
  Registry,
} from 'prom-client';
import { JOB_RESULTS } from './tasks/outcome';

/** The worker's Prometheus metrics; one registry per process (tests create their own). */
export function createWorkerMetrics(registry = new Registry()) {
  collectProcessMetrics(registry, 'certq_worker_');
  const counter = <L extends string>(config: Omit<CounterConfiguration<L>, 'registers'>) =>
    new Counter({ ...config, registers: [registry] });
  const histogram = <L extends string>(config: Omit<HistogramConfiguration<L>, 'registers'>) =>
    new Histogram({ ...config, registers: [registry] });
  return {
    registry,
    jobs: counter({
      name: 'certq_jobs_total',
      help: `Stage jobs handled, by stage and outcome (${JOB_RESULTS.join(', ')}).`,
      labelNames: ['stage', 'outcome'] as const,
    }),
    jobDuration: histogram({
      name: 'certq_job_duration_seconds',
      help: 'Time spent handling one stage job, upstream call included.',
      labelNames: ['stage'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    }),
    upstreamRequests: counter({
      name: 'certq_upstream_requests_total',
      help: 'Requests to httpsok by endpoint and outcome (ok, or the error kind).',
      labelNames: ['endpoint', 'outcome'] as const,
    }),
    upstreamCalls: counter({
      name: 'certq_upstream_calls_total',
      help: 'Calls to httpsok by endpoint (dv, apply, get) and reason: first, confirming, split_horizon (dv); apply; issuing, issued, failed, adoption (get); error (no answer), retry (sent again after a 5xx). Divided by issued certificates, the budget per certificate.',
      labelNames: ['endpoint', 'reason'] as const,
    }),
    upstreamDuration: histogram({
      name: 'certq_upstream_request_duration_seconds',
      help: 'Latency of requests to httpsok by endpoint.',
      labelNames: ['endpoint'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15],
    }),
    dnsChecks: counter({
      name: 'certq_dns_checks_total',
      help: 'Local DNS checks of one domain by result: ok, missing, wrong_target, lookup_failed (CNAME) and caa_forbidden, caa_lookup_failed (CAA).',
      labelNames: ['result'] as const,
    }),
    upstreamDvSaved: counter({
      name: 'certq_upstream_dv_saved_total',
      help: 'Verification rounds where the local DNS check showed a domain not ready, so httpsok was not asked (one dv call saved each).',
    }),
    caChanges: counter({
      name: 'certq_ca_changes_total',
      help: 'Orders handed to their next CA, by why: caa (CAA forbids the CA) or rejected (the application ended with status 3).',
      labelNames: ['why'] as const,
    }),
    reconcilerRepairs: counter({
      name: 'certq_reconciler_repairs_total',
      help: 'Active orders whose stage job was missing from Redis and was put back by the reconciler.',
    }),
    applyUnknownOutcome: counter({
      name: 'certq_apply_unknown_outcome_total',
      help: 'Apply calls repeated because an earlier call for the same order ended with no known outcome (crash, timeout).',
    }),
    ordersFinished: counter({
      name: 'certq_orders_finished_total',
      help: 'Orders that reached a terminal status, by status and kind.',
      labelNames: ['status', 'kind'] as const,
    }),
    renewalOrdersCreated: counter({
      name: 'certq_renewal_orders_created_total',
      help: 'Renewal orders created by the renewal scanner.',
    }),
    renewalsDue: new Gauge({
      name: 'certq_renewal_scan_due',
      help: 'Certificates due for renewal at the last scan: past their renewal time (renew_at) and backoff, no active order.',
      registers: [registry],
    }),
    renewalScanDuration: histogram({
      name: 'certq_renewal_scan_duration_seconds',
      help: 'Wall time of one renewal scan (creating and enqueueing its orders included).',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    }),
    webhookDeliveries: counter({
      name: 'certq_webhook_deliveries_total',
      help: 'Webhook POST attempts by outcome: delivered, retry (will try again), given_up (last attempt failed), dropped (webhook removed).',
      labelNames: ['outcome'] as const,
    }),
    webhookRelayRequeued: counter({
      name: 'certq_webhook_relay_requeued_total',
      help: 'Pending webhook deliveries whose job was missing from Redis and was put back by the relay.',
    }),
  };
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
