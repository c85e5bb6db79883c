import type { Stage, StageJob } from '@certq/core';
import type { WorkerContext } from './context';
import { applyTask } from './tasks/apply';
import type { Outcome } from './tasks/outcome';
import { pollTask } from './tasks/poll';
import { verifyTask } from './tasks/verify';

/*
 * An order's life, top to bottom. Postgres holds where each order is (`orders.status`, changed only by
 * `transitionOrder` in @certq/db, allowed moves in @certq/core state.ts); Redis holds when its stage runs
 * next (one BullMQ job per stage and run, id `<stage>-<orderId>-r<run>`). Each stage is one task; a task
 * loads the order, checks the job still drives it (same status, same run), calls httpsok at most once,
 * commits, and returns an Outcome that the stage's worker (workers.ts) turns into BullMQ calls.
 *
 *   created (API, renewal scan or bulk renewal: insertOrders)              run 1, verifying, due now
 *     │
 *   verifying ── verifyTask (tasks/verify.ts)
 *     │  DNS not in place (certq's own check, then httpsok's dv) ... waits, checking again    ─┐
 *     │  upstream error ............................................ retries                 ├─ reschedule
 *     │  past STAGE_WINDOW_HOURS ................................... failed                  ─┘
 *     │  CAA forbids the CA ........................ new run with the next CA (or failed: none left)
 *     ▼
 *   applying ── applyTask (tasks/apply.ts)
 *     │  refused "domain not verified" .................................. back to verifying
 *     │  refused as a bad request, key refused .......................... failed
 *     │  error envelope, rate limit ..................................... retries / slows down
 *     │  no known outcome (gateway 502/504, timeout, crash) ............. the intent stays: waits for the
 *     │      callback to announce the application (adopted), else applies again with apply_outcome_unknown
 *     ▼
 *   issuing ── pollTask (tasks/poll.ts), never within 10 s of the last request for the application
 *     │  still issuing ........................................ waits POLL_INTERVAL_MS (a callback: now)
 *     │  upstream error ....................................... retries, never sooner than the interval
 *     │  application failed (status 3) ........ new run with the next CA, back to verifying (or failed)
 *     ▼
 *   issued ── completeIssuance (tasks/issuance.ts): the certificate stored as current, the webhook
 *     outbox row written in the same statement. Renewal hooks in here: the certificate's renewal time
 *     (`renewalTime`, @certq/core renewal-policy.ts) is stored with it, and the renewal scan
 *     (renewals/scanner.ts) creates a `renewal` order once it is reached — the life starts again at run 1.
 *
 * Every retry and every wait goes through one function: `reschedule` (tasks/schedule.ts), which writes
 * the next attempt to Postgres and returns the job's delay; the retry delay rule (≥ 10 s, exponential
 * with jitter, capped at RETRY_MAX_DELAY_MS) and the stage window (STAGE_WINDOW_HOURS) live beside it.
 * Every new run — an operator's retry (POST /v1/orders/{id}/retry, @certq/workflow) or a move to the next
 * CA (tasks/dns.ts changeCa) — goes through `startRun` (@certq/db, next to `enterStage`): run + 1, every
 * per-run column reset, so the old run's jobs find themselves stale. `cancelled` and `failed` end a life;
 * a failed order may be retried.
 */

/** A task: gets its job's payload and the worker's helpers, does one stage's step, returns an Outcome. */
export type Task = (ctx: WorkerContext, job: StageJob) => Promise<Outcome>;

/** The only place that knows which task serves which stage, in the order an order meets them. */
export const TASKS: Readonly<Record<Stage, Task>> = { verify: verifyTask, apply: applyTask, poll: pollTask };
