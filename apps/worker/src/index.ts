export { type CallbackResult, receiveCallback } from './callback';
export { createWorkflowContext, type WorkflowContext, type WorkflowContextOptions } from './context';
export { completeIssuance, type IssuanceResult } from './issuance';
export { createUpstreamLimiter, type UpstreamLimiter } from './limiter';
export { createLogger, REDACT_PATHS } from './logger';
export { type Maintenance, RENEWAL_SCAN_SCHEDULER, startMaintenance } from './maintenance';
export { createWorkerMetrics, type WorkerMetrics } from './metrics';
export { type MetricsServer, startMetricsServer } from './metrics-server';
export {
  createQueues,
  enqueueOrders,
  type Queues,
  STAGE_JOB_OPTIONS,
  stageJobFor,
  WEBHOOK_RETRY_DEFAULTS,
  type WebhookJobData,
  type WebhookRetryOptions,
} from './queues';
export { type ReconcileResult, reconcile } from './reconciler';
export {
  getRenewalBatch,
  type RenewalBatchProgress,
  type RenewalBatchResult,
  type RenewalRequest,
  type RenewalSelection,
  requestRenewals,
} from './renewals/batch';
export { MAX_JOB_PRIORITY, RenewalBacklog, renewalPriority, spreadNotBefore } from './renewals/priority';
export {
  explainRenewalScan,
  renewalCandidatesQuery,
  renewalWindowEnd,
  type ScanOptions,
  type ScanResult,
  scanRenewals,
} from './renewals/scanner';
export { createStageWorkers, TASKS, type Task } from './runner';
export type { Outcome } from './tasks/outcome';
export {
  createWebhookWorker,
  deliverWebhook,
  enqueueWebhookDeliveries,
  WEBHOOK_TIMEOUT_MS,
} from './webhooks/delivery';
export { EXPIRING_WITHIN_DAYS, notifyExpiring } from './webhooks/expiring';
export { type RelayResult, relayWebhooks } from './webhooks/relay';
export { signWebhook, type VerifyWebhookArgs, verifyWebhookSignature } from './webhooks/signing';
export { type StartWorkerOptions, secretBoxFromConfig, startWorker, type WorkerHandle } from './worker';
