/**
 * A workflow rule refused a request. `code` is the stable, documented reason; the API maps it to an
 * HTTP status in one table (apps/api/src/plugins/errors.ts), so no rule is restated there.
 */
export type WorkflowErrorCode =
  | 'not_found'
  | 'unknown_tenant'
  | 'invalid_idempotency_key'
  | 'idempotency_key_reused'
  | 'not_retryable'
  | 'not_cancellable'
  | 'conflict'
  | 'not_verifying'
  | 'dns_check_too_soon'
  | 'tenant_suspended'
  | 'tenant_deleted'
  | 'domain_taken'
  | 'domain_owned_by_another_tenant';

export class WorkflowError extends Error {
  constructor(
    readonly code: WorkflowErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'WorkflowError';
  }
}

export function isWorkflowError(error: unknown): error is WorkflowError {
  return error instanceof WorkflowError;
}
