// The worker process (see main.ts). Exported for the launcher (scripts/), benchmarks and tests; the
// workflow both processes share lives in @certq/workflow, not here.
export { createWorkerContext, type WorkerContext, type WorkerContextOptions } from './context';
export { createUpstreamLimiter, type UpstreamLimiter, type UpstreamUse } from './limiter';
export { createLogger } from './logger';
export { type Maintenance, RENEWAL_SCAN_SCHEDULER, startMaintenance } from './maintenance';
export { createWorkerMetrics, type WorkerMetrics } from './metrics';
export { type MetricsServer, startMetricsServer } from './metrics-server';
export {
  explainRenewalScan,
  renewalCandidatesQuery,
  type ScanOptions,
  type ScanResult,
  scanRenewals,
} from './renewals/scanner';
export { type StartWorkerOptions, startWorker, type WorkerHandle } from './runner';
export { type ReconcileResult, reconcile } from './sweeps/reconcile';
export { type RelayResult, relayWebhooks } from './sweeps/webhook-relay';
export { TASKS, type Task } from './tasks/index';
export { completeIssuance, type IssuanceResult } from './tasks/issuance';
export { JOB_RESULTS, type JobResult, type Outcome } from './tasks/outcome';
export {
  createWebhookWorker,
  deliverWebhook,
  enqueueWebhookDeliveries,
  WEBHOOK_TIMEOUT_MS,
} from './webhooks/delivery';
export { notifyExpiring } from './webhooks/expiring';
export { signWebhook, type VerifyWebhookArgs, verifyWebhookSignature } from './webhooks/signing';
export { createStageWorkers } from './workers';
