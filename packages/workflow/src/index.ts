export { type CallbackResult, nudgeFromCallback } from './callbacks';
export {
  assertTenantWritable,
  type DeleteTenantResult,
  deleteTenant,
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
  type OrderOptions,
  retryOrder,
} from './orders';
export {
  enqueueWebhookJobs,
  OWNERSHIP_RECORD_PREFIX,
  type OwnershipProofs,
  ownedByAnotherTenant,
  ownershipKey,
  ownershipOf,
  ownershipRecord,
  provenNames,
  stopServingCertificates,
  type TransferActor,
  type TransferResult,
  transferClaims,
  transferDomainByOperator,
} from './ownership';
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
export {
  dueForRenewal,
  expiringAt,
  HAS_ACTIVE_ORDER,
  RENEWABLE,
  RENEWABLE_ON_REQUEST,
  RENEWAL_CANDIDATE_COLUMNS,
  RENEWAL_CANDIDATES_FROM,
  type RenewalCandidate,
  renewalOverdueAt,
  renewalRequest,
} from './renewals/candidates';
export { spreadNotBefore } from './renewals/spread';
export { ANALYZE_EVERY_BATCHES, freshenOrderStatistics, freshenStatisticsAfter } from './renewals/statistics';
