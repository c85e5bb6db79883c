import type { ResolveAll } from '@certq/core';
import { QUEUE_NAMES } from '@certq/core';
import { tenants, webhookDeliveries, webhookDeliveryFields } from '@certq/db';
import { createWorker, type Queues, WEBHOOK_RETRY_DEFAULTS, type WebhookJobData } from '@certq/workflow';
import { type ConnectionOptions, type Job, type JobsOptions, UnrecoverableError, type Worker } from 'bullmq';
import { and, eq, sql } from 'drizzle-orm';
import { type Agent, request } from 'undici';
import type { WorkerContext } from '../context';
import { type DatabaseGate, putBack } from '../db-gate';
import {
  classifyDeliveryError,
  createWebhookDispatcher,
  RESPONSE_SNIPPET_CHARS,
  sanitizeSnippet,
} from './address-policy';
import { signWebhook } from './signing';

/** How long one POST may take, connection included. A slow receiver costs one job slot, never issuance. */
export const WEBHOOK_TIMEOUT_MS = 10_000;

export interface WebhookDeliveryJob {
  id: string;
  /** Wait this long first (a re-enqueued delivery keeps its schedule). */
  delayMs?: number;
  /** Attempts left (a re-enqueued delivery does not start over). */
  attempts?: number;
}

/**
 * Puts outbox rows on the webhooks queue. The job id is the delivery id, so enqueueing the same row
 * again (after commit, from the relay) while its job exists is a no-op.
 */
export async function enqueueWebhookDeliveries(
  queues: Queues,
  deliveries: readonly (string | WebhookDeliveryJob)[],
): Promise<void> {
  const jobs = deliveries.map((d) => {
    const job = typeof d === 'string' ? { id: d } : d;
    const opts: JobsOptions = { jobId: job.id };
    if (job.delayMs) opts.delay = job.delayMs;
    if (job.attempts) opts.attempts = job.attempts;
    return { name: 'deliver', data: { deliveryId: job.id }, opts };
  });
  for (let i = 0; i < jobs.length; i += 1000) await queues.webhooks.addBulk(jobs.slice(i, i + 1000));
}

/** Enqueues after a commit; a failure is only logged (the relay finds pending rows without a job). */
export async function enqueueWebhooksAfterCommit(ctx: WorkerContext, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  try {
    await enqueueWebhookDeliveries(ctx.queues, ids);
  } catch (error) {
    ctx.logger.warn(
      { err: error, deliveries: ids.length },
      'enqueueing webhook deliveries failed; the relay will',
    );
  }
}

export function maxWebhookAttempts(queues: Queues): number {
  return queues.webhooks.defaultJobOptions.attempts ?? WEBHOOK_RETRY_DEFAULTS.attempts;
}

function backoffBaseMs(queues: Queues): number {
  const backoff = queues.webhooks.defaultJobOptions.backoff;
  return typeof backoff === 'object' && backoff.delay !== undefined
    ? backoff.delay
    : WEBHOOK_RETRY_DEFAULTS.backoffMs;
}

export interface WebhookHttp {
  dispatcher: Agent;
  timeoutMs: number;
}

/**
 * One POST of one delivery. 2xx: delivered. Anything else (status, timeout, refused connection) counts
 * an attempt; BullMQ retries the job with exponential backoff, and after the last attempt the row is
 * marked failed (given up). At-least-once: a crash after the POST but before the row is updated sends
 * it again, so receivers deduplicate on `x-certq-delivery`.
 */
export async function deliverWebhook(
  ctx: WorkerContext,
  job: Job<WebhookJobData>,
  http: WebhookHttp,
): Promise<string> {
  const id = job.data.deliveryId;
  const [row] = await ctx.db
    .select({
      ...webhookDeliveryFields,
      url: tenants.webhookUrl,
      secretSealed: tenants.webhookSecretSealed,
    })
    .from(webhookDeliveries)
    .innerJoin(tenants, eq(tenants.id, webhookDeliveries.tenantId))
    .where(eq(webhookDeliveries.id, id));
  if (!row) return 'unknown delivery';
  if (row.status !== 'pending') return `already ${row.status}`;
  const log = ctx.logger.child({
    deliveryId: id,
    tenantId: row.tenantId,
    orderId: row.orderId,
    event: row.event,
  });
  const pending = and(eq(webhookDeliveries.id, id), eq(webhookDeliveries.status, 'pending'));
  if (!row.url || !row.secretSealed) {
    await ctx.db
      .update(webhookDeliveries)
      .set({ status: 'failed', lastError: 'the tenant removed its webhook' })
      .where(pending);
    ctx.metrics.webhookDeliveries.inc({ outcome: 'dropped' });
    return 'dropped: webhook removed';
  }

  const body = JSON.stringify(row.payload);
  const timestamp = Math.floor(Date.now() / 1000);
  let statusCode: number | null = null;
  let error: string | null = null;
  try {
    const response = await request(row.url, {
      method: 'POST',
      dispatcher: http.dispatcher,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'certq-webhooks',
        'x-certq-event': row.event,
        'x-certq-delivery': id,
        'x-certq-timestamp': String(timestamp),
        'x-certq-signature': signWebhook(ctx.secrets.open(row.secretSealed), timestamp, body),
      },
      body,
      headersTimeout: http.timeoutMs,
      bodyTimeout: http.timeoutMs,
      signal: AbortSignal.timeout(http.timeoutMs),
    });
    statusCode = response.statusCode;
    if (statusCode >= 200 && statusCode < 300) {
      await response.body.dump({ limit: 64 * 1024 }).catch(() => {});
    } else if (statusCode >= 300 && statusCode < 400) {
      await response.body.dump({ limit: 64 * 1024 }).catch(() => {});
      error = `HTTP ${statusCode} (redirects are not followed)`;
    } else {
      const snippet = sanitizeSnippet(await readPrefix(response.body, RESPONSE_SNIPPET_CHARS * 4));
      error = snippet ? `HTTP ${statusCode}: ${snippet}` : `HTTP ${statusCode}`;
    }
  } catch (cause) {
    // Classified, never the library's message: that would name internal addresses and ports.
    error = classifyDeliveryError(cause);
  }

  if (error === null) {
    await ctx.db
      .update(webhookDeliveries)
      .set({
        status: 'delivered',
        attempts: sql`${webhookDeliveries.attempts} + 1`,
        lastStatusCode: statusCode,
        lastError: null,
        deliveredAt: sql`now()`,
      })
      .where(pending);
    ctx.metrics.webhookDeliveries.inc({ outcome: 'delivered' });
    log.debug({ statusCode }, 'webhook delivered');
    return 'delivered';
  }

  const final =
    job.attemptsMade + 1 >= (job.opts.attempts ?? 1) || row.attempts + 1 >= maxWebhookAttempts(ctx.queues);
  // BullMQ's exponential backoff after this failure: base · 2^(failures so far).
  const retryInMs = backoffBaseMs(ctx.queues) * 2 ** job.attemptsMade;
  await ctx.db
    .update(webhookDeliveries)
    .set({
      status: final ? 'failed' : 'pending',
      attempts: sql`${webhookDeliveries.attempts} + 1`,
      lastStatusCode: statusCode,
      lastError: error.slice(0, 1000),
      nextAttemptAt: final ? sql`now()` : sql`now() + make_interval(secs => ${retryInMs / 1000})`,
    })
    .where(pending);
  ctx.metrics.webhookDeliveries.inc({ outcome: final ? 'given_up' : 'retry' });
  if (final) {
    log.warn({ statusCode, error, attempts: row.attempts + 1 }, 'webhook delivery given up');
    throw new UnrecoverableError(`webhook delivery given up: ${error}`);
  }
  log.info({ statusCode, error, attempts: row.attempts + 1, retryInMs }, 'webhook delivery failed, retrying');
  throw new Error(`webhook delivery failed: ${error}`);
}

/** The first `limit` bytes of a body as text; the rest is discarded without being read into memory. */
async function readPrefix(
  body: AsyncIterable<Buffer> & { destroy(): unknown },
  limit: number,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= limit) break;
    }
  } catch {
    // a body cut short is still a failed delivery; its status is what counts
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

export interface WebhookWorkerOptions {
  connection: ConnectionOptions;
  concurrency: number;
  timeoutMs?: number;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Tests only: how webhook host names resolve (no test may reach real DNS). */
  resolveAll?: ResolveAll;
  /** Tests only: an exact host:port let through despite the address policy. */
  allowTarget?: (host: string, port: number) => boolean;
  /** Postgres outages: a delivery that meets one is put back without spending an attempt. */
  gate?: DatabaseGate;
}

/** The webhooks queue's Worker, separate from the stage queues: a dead endpoint never blocks issuance. */
export function createWebhookWorker(
  ctx: WorkerContext,
  options: WebhookWorkerOptions,
): { worker: Worker<WebhookJobData>; close(): Promise<void> } {
  const timeoutMs = options.timeoutMs ?? WEBHOOK_TIMEOUT_MS;
  const dispatcher = createWebhookDispatcher(
    { allowPrivate: ctx.config.WEBHOOK_ALLOW_PRIVATE, resolveAll: options.resolveAll },
    timeoutMs,
    options.allowTarget,
  );
  const worker = createWorker<WebhookJobData>(
    QUEUE_NAMES.webhooks,
    async (job, token) => {
      try {
        return await deliverWebhook(ctx, job, { dispatcher, timeoutMs });
      } catch (error) {
        if (options.gate && (await options.gate.isOutage(error))) return putBack(job, token);
        throw error;
      }
    },
    {
      connection: options.connection,
      prefix: ctx.queues.prefix,
      concurrency: options.concurrency,
      lockDuration: options.lockDurationMs,
      stalledInterval: options.stalledIntervalMs,
      maxStalledCount: 10,
    },
  );
  worker.on('error', (error) => ctx.logger.error({ err: error }, 'webhook worker error'));
  return {
    worker,
    async close() {
      await worker.close();
      await dispatcher.close();
    },
  };
}
