import createClient, { type Client, type ClientOptions } from 'openapi-fetch';
import { bindOperations } from './generated/operations';
import type { components, operations, paths } from './generated/schema';

export { OPERATIONS, type OperationId } from './generated/operations';
export type { components, operations, paths } from './generated/schema';

type Schemas = components['schemas'];
/** An order as the API shows it. */
export type Order = Schemas['Order'];
export type OrderStatus = Order['status'];
/** Certificate metadata (no PEM, no key). */
export type Certificate = Schemas['Certificate'];
/** The body of every error answer: `{ error: { code, message, details? } }`. */
export type ErrorBody = Schemas['Error'];
export type RenewalBatch = Schemas['RenewalBatch'];
export type OrderInput = NonNullable<operations['createOrder']['requestBody']>['content']['application/json'];

/** A failed answer of the API, with its HTTP status and certq's error code, message and details. */
export class CertqApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'CertqApiError';
  }
}

export interface CertqClientOptions {
  /** The API's base URL, e.g. `http://127.0.0.1:3000`. */
  baseUrl: string;
  /** `ADMIN_TOKEN` or a tenant token; sent as `Authorization: Bearer …`. */
  token?: string;
  /** Another fetch (a proxy-aware one, or for tests). Default: the global fetch. */
  fetch?: ClientOptions['fetch'];
  /** Extra headers on every request. */
  headers?: Record<string, string>;
}

export type CertqClient = ReturnType<typeof bindOperations> & {
  /** The openapi-fetch client underneath, by path: `raw.GET('/v1/orders/{id}', …)`. */
  raw: Client<paths>;
};

/**
 * A typed client of the certq API: one method per operation, named by its operationId
 * (`createTenant`, `listOrders`, `getOrder`, `createOrdersBulk`, …), each answering openapi-fetch's
 * `{ data, error, response }`. Wrap a call in `unwrap()` to get the data or a `CertqApiError`.
 */
export function createCertqClient(options: CertqClientOptions): CertqClient {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const raw = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ''),
    headers,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  return { ...bindOperations(raw), raw };
}

interface Outcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The data of a successful answer; a `CertqApiError` for any error answer. */
export async function unwrap<T>(call: Promise<Outcome<T>>): Promise<T> {
  const { data, error, response } = await call;
  if (response.ok) return data as T;
  const body = (error ?? {}) as Partial<ErrorBody>;
  throw new CertqApiError(
    response.status,
    body.error?.code ?? `http_${response.status}`,
    body.error?.message ?? `HTTP ${response.status} ${response.statusText}`,
    body.error?.details,
  );
}
