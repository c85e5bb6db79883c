export { type CallbackResult, nudgeFromCallback } from './callbacks';
export {
  assertTenantWritable,
  type DeleteTenantResult,
  deleteTenant,
  enqueueWebhookJobs,
  type RetireArgs,
  type RetireResult,
  resumeTenant,
  retireCertificate,
  type SuspendResult,
  storeUploadedCertificate,
  suspendedError,
  suspendTenant,
  type UploadArgs,
} from './certificate-life';
export { DNS_CHECK_MIN_SPACING_MS, requestDnsCheck } from './dns-check';
export { DEFAULT_ENQUEUE_TIMEOUT_MS, type EnqueueLogger, enqueueSafely, withTimeout } from './enqueue';
export { isWorkflowError, WorkflowError, type WorkflowErrorCode } from './errors';
export {
  assertTenantsExist,
  type CreateOrderResult,
  cancelOrder,
  createOrder,
  createOrders,
  type OrderDeps,
  retryOrder,
} from './orders';
export {
  createQueues,
  enqueueOrders,
  type Queues,
  STAGE_JOB_OPTIONS,
  stageJobFor,
  WEBHOOK_RETRY_DEFAULTS,
  type WebhookJobData,
  type WebhookRetryOptions,
  webhookJobOptions,
} from './queues';
export {
  getRenewalBatch,
  type RenewalBatchProgress,
  type RenewalBatchResult,
  type RenewalRequest,
  type RenewalSelection,
  requestRenewals,
} from './renewals/batch';
export { spreadNotBefore } from './renewals/spread';
export { ANALYZE_EVERY_BATCHES, freshenOrderStatistics, freshenStatisticsAfter } from './renewals/statistics';
