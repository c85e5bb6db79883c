import { basename } from 'node:path';
import { CertqApiError, type CertqClient, type OrderInput, unwrap } from '@certq/sdk';
import { SingleBar } from 'cli-progress';
import { CliError, EXIT, isNetworkError, usage } from '../exit';
import type { Output } from '../output';
import { readOrders, surveyCsv } from './csv';
import { Journal, type JournalState, toRanges } from './journal';

/** The bulk route's ceiling. */
export const MAX_CHUNK = 10_000;

export interface ImportOptions {
  file: string;
  tenant?: string;
  chunkSize: number;
  restart: boolean;
  statePath?: string;
}

export interface ImportSummary {
  file: string;
  state: string;
  lines: number;
  accepted: number;
  duplicate: number;
  refused: number;
  /** Bulk requests sent by this run. */
  requests: number;
  /** This run continued an interrupted import. */
  resumed: boolean;
  /** Wall time of this run, and the part of it spent waiting for the API's answers. */
  elapsedMs: number;
  apiMs: number;
  refusedLines: { line: number; reason: string }[];
  duplicateLines: { line: number; duplicateOf: number; orderId: string }[];
}

interface Pending {
  line: number;
  order: OrderInput;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `orders[17].domains[2]` → 17 and `domains[2]`. */
const ITEM_PATH = /^orders\[(\d+)\]\.?(.*)$/;

/**
 * The items a 400 of the bulk route blames, with the reason for each: every schema issue it lists
 * (up to 50 per answer), or the single item a handler check names (`details.path`).
 */
function blamedItems(
  error: CertqApiError,
): { index: number; field: string; reason: string; single: boolean }[] {
  const details = (error.details ?? {}) as {
    issues?: { path?: string; message?: string }[];
    path?: string;
  };
  const blamed: { index: number; field: string; reason: string; single: boolean }[] = [];
  for (const issue of details.issues ?? []) {
    const match = ITEM_PATH.exec(issue.path ?? '');
    if (match)
      blamed.push({
        index: Number(match[1]),
        field: match[2]!,
        reason: `${match[2] || '(line)'}: ${issue.message ?? 'invalid'}`,
        single: false,
      });
  }
  const match = ITEM_PATH.exec(details.path ?? '');
  if (match) {
    const reason = error.message.replace(/^orders\[\d+\]\./, '');
    blamed.push({ index: Number(match[1]), field: match[2]!, reason, single: true });
  }
  return blamed;
}

/**
 * `certq orders import`: streams the CSV in bulk requests of up to `chunkSize` orders, recording
 * each answer in the journal before going on. A resume skips every line the journal has an answer
 * for and sends the others; a request whose answer was lost is sent again, and the bulk route
 * answers a domain set that already has an active order with that order, so the lines get their
 * first order back instead of a second one. A 400 names the items it refuses (nothing of that
 * request is stored): those lines are recorded as refused and the rest is sent again.
 */
export async function importOrders(
  client: CertqClient,
  out: Output,
  api: string,
  options: ImportOptions,
): Promise<ImportSummary> {
  const startedAt = performance.now();
  let apiMs = 0;
  const journal = new Journal(options.statePath ?? `${options.file}.certq-import`);
  if (options.restart) journal.remove();
  let survey: { sha256: string; lines: number };
  try {
    survey = await surveyCsv(options.file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw usage(`${options.file}: no such file`);
    throw error;
  }
  let state: JournalState;
  try {
    state = journal.load();
  } catch (error) {
    throw usage((error as Error).message);
  }
  const resumed = Boolean(state.begin);
  if (state.begin) {
    const why =
      state.begin.sha256 !== survey.sha256
        ? 'the file changed since'
        : state.begin.api !== api
          ? `it was against ${state.begin.api}`
          : (state.begin.tenant ?? null) !== (options.tenant ?? null)
            ? `it was with --tenant ${state.begin.tenant ?? '(none)'}`
            : undefined;
    if (why)
      throw usage(
        `${journal.path} records an earlier import of this file, but ${why}: run with --restart to import it anew (orders already created stay)`,
      );
  } else {
    journal.append({
      t: 'begin',
      version: 1,
      sha256: survey.sha256,
      lines: survey.lines,
      api,
      tenant: options.tenant ?? null,
      at: new Date().toISOString(),
    });
  }
  if (state.unanswered.length)
    out.note(
      `resuming: ${state.unanswered.length} line(s) of an unanswered request are sent again (their active orders are returned, not duplicated)`,
    );

  const seen = new Map<string, number>();
  let duplicates = 0;
  const countAccepted = (line: number, id: string) => {
    if (seen.has(id) && seen.get(id) !== line) duplicates++;
    else seen.set(id, line);
  };
  for (const [line, id] of [...state.accepted].sort((a, b) => a[0] - b[0])) countAccepted(line, id);

  const interactive = Boolean(process.stderr.isTTY);
  const bar = new SingleBar({
    format:
      'importing [{bar}] {percentage}% | {value}/{total} lines | {accepted} accepted, {duplicate} duplicate, {refused} refused',
    stream: process.stderr,
    hideCursor: true,
    etaBuffer: 50,
  });
  const counters = () => ({ accepted: seen.size, duplicate: duplicates, refused: state.refused.size });
  const done = () => state.accepted.size + state.refused.size;
  if (interactive) bar.start(survey.lines, done(), counters());
  const onInterrupt = () => {
    bar.stop();
    out.note(`interrupted: run the same command again to resume (${journal.path} records what was accepted)`);
    process.exit(EXIT.interrupted);
  };
  process.once('SIGINT', onInterrupt);

  let seq = state.lastSeq;
  let requests = 0;

  const refuse = (line: number, reason: string) => {
    state.refused.set(line, reason);
    journal.append({ t: 'refused', line, reason });
  };

  async function post(batch: Pending[]) {
    for (let attempt = 1; ; attempt++) {
      try {
        requests++;
        const sent = performance.now();
        try {
          return await unwrap(client.createOrdersBulk({ body: { orders: batch.map((p) => p.order) } }));
        } finally {
          apiMs += performance.now() - sent;
        }
      } catch (error) {
        const transient =
          isNetworkError(error) ||
          (error instanceof CertqApiError && (error.status === 429 || error.status >= 500));
        if (!transient || attempt >= 6) throw error;
        // Nothing of a failed request is stored (one transaction): sending it again is safe.
        await sleep(Math.min(500 * 2 ** attempt, 10_000));
      }
    }
  }

  async function send(batch: Pending[]): Promise<void> {
    let pending = batch;
    while (pending.length) {
      seq++;
      journal.append({ t: 'send', seq, lines: toRanges(pending.map((p) => p.line)) });
      let answer: Awaited<ReturnType<typeof post>>;
      try {
        answer = await post(pending);
      } catch (error) {
        if (error instanceof CertqApiError && error.status === 413) {
          if (pending.length === 1) {
            // One line alone is larger than the API takes: that line is refused (and journalled, so a
            // resume skips it), the import goes on.
            refuse(pending[0]!.line, 'the line is larger than the API accepts in one request (413)');
            if (interactive) bar.update(done(), counters());
            return;
          }
          // Too large a body (many domains per line): the same lines in two smaller requests.
          const half = Math.ceil(pending.length / 2);
          await send(pending.slice(0, half));
          await send(pending.slice(half));
          return;
        }
        if (!(error instanceof CertqApiError) || error.status !== 400) throw error;
        const blamed = blamedItems(error);
        if (!blamed.length)
          throw new CliError(`the API refused a chunk without naming a line: ${error.message}`, EXIT.refused);
        const refusedNow = new Map<number, string>();
        for (const { index, field, reason, single } of blamed) {
          const item = pending[index];
          if (!item) continue;
          refusedNow.set(index, refusedNow.has(index) ? `${refusedNow.get(index)}; ${reason}` : reason);
          // A tenant check holds for every line naming the same tenant (or none): refuse them together.
          if (single && field === 'tenantId')
            pending.forEach((p, i) => {
              if (p.order.tenantId === item.order.tenantId && !refusedNow.has(i)) refusedNow.set(i, reason);
            });
        }
        for (const [index, reason] of refusedNow) refuse(pending[index]!.line, reason);
        pending = pending.filter((_, i) => !refusedNow.has(i));
        if (interactive) bar.update(done(), counters());
        continue;
      }
      const ids = answer.orders.map((o) => o.id);
      journal.append({ t: 'accepted', seq, ids });
      pending.forEach((p, i) => {
        state.accepted.set(p.line, ids[i]!);
        countAccepted(p.line, ids[i]!);
      });
      if (interactive) bar.update(done(), counters());
      return;
    }
  }

  try {
    if (!state.ended) {
      let chunk: Pending[] = [];
      for await (const item of readOrders(options.file, options.tenant)) {
        if (state.accepted.has(item.line) || state.refused.has(item.line)) continue;
        if ('refused' in item) {
          refuse(item.line, item.refused);
          continue;
        }
        chunk.push({ line: item.line, order: item.order });
        if (chunk.length >= options.chunkSize) {
          await send(chunk);
          chunk = [];
        }
      }
      if (chunk.length) await send(chunk);
      journal.append({ t: 'end', at: new Date().toISOString() });
    }
  } finally {
    if (interactive) bar.stop();
    process.removeListener('SIGINT', onInterrupt);
  }

  // The summary comes from the whole journal: lines accepted by an interrupted run count too.
  const firstLine = new Map<string, number>();
  const duplicateLines: ImportSummary['duplicateLines'] = [];
  for (const [line, id] of [...state.accepted].sort((a, b) => a[0] - b[0])) {
    const first = firstLine.get(id);
    if (first === undefined) firstLine.set(id, line);
    else duplicateLines.push({ line, duplicateOf: first, orderId: id });
  }
  const refusedLines = [...state.refused]
    .sort((a, b) => a[0] - b[0])
    .map(([line, reason]) => ({ line, reason }));
  return {
    file: basename(options.file),
    state: journal.path,
    lines: survey.lines,
    accepted: firstLine.size,
    duplicate: duplicateLines.length,
    refused: refusedLines.length,
    requests,
    resumed,
    elapsedMs: Math.round(performance.now() - startedAt),
    apiMs: Math.round(apiMs),
    refusedLines,
    duplicateLines,
  };
}
