import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type AgentOptions, describeAddress } from './args';
import { CertificateServer } from './caddy';
import { AuthError, CertqClient } from './client';
import {
  fileNameOf,
  removeDirIfEmpty,
  removeFile,
  splitBundle,
  writeFileAtomic,
  writeFilesAtomic,
} from './files';
import { HaproxyRuntime } from './haproxy';
import { startHealthServer } from './health';
import type { Logger } from './log';
import { AgentMetrics } from './metrics';
import { type AgentState, loadState, removeStaleTempFiles, saveState } from './state';

export const NGINX_MAP_FILE = 'certq-names.map';
export const HAPROXY_CRT_LIST = 'crt-list.txt';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Retries while certq is away stop growing here: a returning certq is seen within seconds. */
const MAX_BACKOFF_MS = 5_000;
const FETCH_CONCURRENCY = 8;
const FETCH_CHUNK = 64;

/** `fn` over `items`, at most `limit` at a time; answers in order, rejects with the first failure. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  });
  await Promise.all(lanes);
  return results;
}

/** The files of one name, relative to the directory. */
export function filesOf(format: AgentOptions['format'], name: string): string[] {
  return format === 'nginx' ? [`${name}/fullchain.pem`, `${name}/privkey.pem`] : [`${name}.pem`];
}

/**
 * Which names each written certificate serves: newest certificate first, so a name two certificates
 * cover goes to the newer one (a certificate left with none is listed nowhere).
 */
export function indexOf(state: AgentState): Map<string, string[]> {
  const byNewest = Object.entries(state.written).sort(
    ([an, a], [bn, b]) =>
      (state.current[b.certificateId]?.since ?? 0) - (state.current[a.certificateId]?.since ?? 0) ||
      an.localeCompare(bn),
  );
  const claimed = new Set<string>();
  const index = new Map<string, string[]>();
  for (const [name, written] of byNewest) {
    const own = written.domains.filter((d) => !claimed.has(d));
    for (const d of own) claimed.add(d);
    if (own.length > 0) index.set(name, own);
  }
  return index;
}

/** What one batch did to the files, for whoever applies it to a running server. */
export interface Batch {
  changed: boolean;
  /** Names whose certificate files were (re)written. */
  written: Set<string>;
}

/**
 * The agent's loop: a full sync (the feed from the saved cursor, 0 the first time), then the feed
 * followed by long-polls. Changes are gathered into a batch (until the feed is quiet for
 * `debounceMs`), the files of every name whose certificate changed are replaced, the state file is
 * saved (files first, so a crash replays a batch and never skips one), then the server is told: the
 * reload command, HAProxy's Runtime API, or the agent's own Caddy endpoint. A certificate that cannot
 * be written is skipped (logged, counted) and retried with the next batch; the others go on. While
 * certq is unreachable the files stay as they are (and are served) and the agent retries with backoff.
 * Returns the exit code: 0 (`--once` done), 1 (`--once` and certq unreachable), 2 (token refused).
 */
export async function runAgent(
  options: AgentOptions,
  log: Logger,
  metrics = new AgentMetrics(),
): Promise<number> {
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  removeStaleTempFiles(dir);
  const state = loadState(dir, options.format);
  const client = new CertqClient(options.api, options.token);
  let cursor = state.cursor;
  metrics.cursor = Number(cursor);
  metrics.certificates = Object.keys(state.written).length;
  let dirty = true; // the first pass always reconciles the files with the state
  let reloadPending = false;
  let backoffMs = 1000;
  log.info(`certq-agent: ${options.format} layout in ${dir}, from cursor ${cursor}`, {
    format: options.format,
    dir,
    cursor,
  });

  // Caddy's endpoint serves what is on disk from the start: certq need not be up for handshakes.
  const server = options.listen && !options.once ? new CertificateServer(dir, metrics, log) : undefined;
  server?.update(state);
  const closers: (() => Promise<void>)[] = [];
  if (server && options.listen) {
    closers.push(await server.listen(options.listen));
    log.info(`serving get_certificate http on ${describeAddress(options.listen)}`);
  }
  if (options.health) {
    closers.push(await startHealthServer(options.health, metrics, options.staleAfterSeconds));
    log.info(`health on ${describeAddress(options.health)} (/healthz, /metrics)`);
  }
  const runtime =
    options.format === 'haproxy' && options.runtimeApi
      ? new HaproxyRuntime(options.runtimeApi, join(dir, HAPROXY_CRT_LIST), metrics, log)
      : undefined;
  if (options.format === 'haproxy') {
    if (runtime)
      log.info(`applying changes through HAProxy's Runtime API at ${describeAddress(options.runtimeApi!)}`);
    else if (options.reload)
      log.info('no --runtime-api: applying changes to HAProxy with the reload command');
    else log.warn('no --runtime-api and no --reload: HAProxy sees changes only at its next reload');
  }
  // Through the Runtime API the first pass always compares HAProxy with the files (two reads).
  if (runtime) reloadPending = true;

  /** Reads the feed until it is drained; returns how many changes it applied to `state.current`. */
  async function drain(waitSeconds: number): Promise<number> {
    let applied = 0;
    let wait = waitSeconds;
    for (;;) {
      const page = await client.changes(cursor, wait);
      for (const change of page.changes) {
        if (change.change === 'current')
          state.current[change.certificateId] = {
            domains: change.domains,
            since: Number(change.cursor),
            fingerprint: change.fingerprint,
          };
        else delete state.current[change.certificateId];
        log.info(
          `change ${change.cursor}: ${change.change} ${change.domains.join(' ')} (certificate ${change.certificateId}, tenant ${change.tenantId})`,
        );
      }
      applied += page.changes.length;
      cursor = page.nextCursor;
      metrics.head = Math.max(metrics.head, Number(cursor));
      if (page.changes.length < 1000) return applied;
      wait = 0;
    }
  }

  try {
    for (;;) {
      try {
        const seen = await drain(dirty ? 0 : options.waitSeconds);
        if (seen > 0 || dirty) {
          // Debounce: a renewal run changes many certificates at once; write and reload once for all.
          if (seen > 0 && options.debounceMs > 0) {
            do await sleep(options.debounceMs);
            while ((await drain(0)) > 0);
          }
          // A long batch (the first sync of a big fleet) saves what it wrote every second, still at
          // the old cursor: a crash then replays the batch knowing which files are already its own.
          let savedAt = Date.now();
          const checkpoint = () => {
            if (Date.now() - savedAt < 1000) return;
            saveState(dir, state);
            savedAt = Date.now();
          };
          const batch = await writeFiles(dir, options, state, client, log, metrics, checkpoint);
          // Saved with the files: a restart between the files and HAProxy still hands them over.
          if (runtime)
            state.runtimePending = [...new Set([...(state.runtimePending ?? []), ...batch.written])];
          state.cursor = cursor;
          saveState(dir, state);
          metrics.cursor = Number(cursor);
          metrics.certificates = Object.keys(state.written).length;
          server?.update(state);
          if (batch.changed) reloadPending = true;
          dirty = false;
        }
        if (reloadPending) {
          if (runtime) {
            const applied = await runtime
              .apply(new Set(state.runtimePending), indexOf(state), dir)
              .then(() => true)
              .catch((error: Error) => {
                metrics.runtimeFailuresTotal++;
                log.warn(`HAProxy Runtime API: ${error.message}`, { error: error.message });
                return false;
              });
            if (!applied && !options.reload) throw new Error('HAProxy did not take the changes; retrying');
            if (!applied) {
              log.warn('falling back to the reload command');
              await runReload(options.reload!, log, metrics);
            }
            state.runtimePending = [];
            saveState(dir, state);
          } else if (options.reload) await runReload(options.reload, log, metrics);
          reloadPending = false;
        }
        backoffMs = 1000;
        metrics.lastSuccessAt = Date.now();
        if (options.once) return 0;
      } catch (error) {
        if (error instanceof AuthError) {
          log.error(`certq-agent: ${error.message}; check --token (an edge token from POST /v1/edge-tokens)`);
          return 2;
        }
        metrics.syncErrorsTotal++;
        if (options.once) {
          log.error(`certq-agent: ${(error as Error).message}; files left as they were`);
          return 1;
        }
        log.warn(
          `certq-agent: ${(error as Error).message}; keeping the current files, retrying in ${backoffMs / 1000} s`,
        );
        // Whatever part of a batch was done is redone from the saved state: reread from its cursor.
        Object.assign(state, loadState(dir, options.format));
        cursor = state.cursor;
        dirty = true;
        await sleep(backoffMs * (0.75 + Math.random() * 0.5));
        backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
      }
    }
  } finally {
    for (const close of closers) await close();
  }
}

/** Makes the directory match `state.current`, one certificate at a time. */
async function writeFiles(
  dir: string,
  options: AgentOptions,
  state: AgentState,
  client: CertqClient,
  log: Logger,
  metrics: AgentMetrics,
  checkpoint: () => void,
): Promise<Batch> {
  // One certificate per file name; the newest wins a name two certificates share.
  const desired = new Map<string, { id: string; since: number; domains: string[]; fingerprint: string }>();
  let skipped = 0;
  const skip = (id: string, domain: string | undefined, why: string) => {
    skipped++;
    metrics.skippedTotal++;
    log.warn(`skipping certificate ${id} (${domain}): ${why}`, { certificateId: id, domain, reason: why });
  };
  for (const [id, cert] of Object.entries(state.current)) {
    const name = fileNameOf(cert.domains[0] ?? '');
    if (!name) {
      skip(id, cert.domains[0], 'cannot be a file name');
      continue;
    }
    const held = desired.get(name);
    if (!held || held.since < cert.since) desired.set(name, { id, ...cert });
  }
  const written = new Set<string>();
  const todo = [...desired].filter(([name, cert]) => state.written[name]?.certificateId !== cert.id);
  // Bundles are fetched a few at a time (a first sync of a big fleet), written in chunks.
  for (let start = 0; start < todo.length; start += FETCH_CHUNK) {
    const chunk = todo.slice(start, start + FETCH_CHUNK);
    const bundles = await mapLimit(chunk, FETCH_CONCURRENCY, ([, cert]) => client.bundle(cert.id));
    for (const [i, [name, cert]] of chunk.entries()) {
      const bundle = bundles[i];
      if (bundle === null || bundle === undefined) continue; // replaced meanwhile: the feed's next change says by what
      const files = filesOf(options.format, name);
      try {
        const { chain, key } = splitBundle(bundle);
        if (options.format === 'nginx') {
          writeFilesAtomic([
            { path: join(dir, name, 'fullchain.pem'), content: chain, mode: 0o644 },
            { path: join(dir, name, 'privkey.pem'), content: key, mode: 0o600 },
          ]);
        } else {
          writeFileAtomic(join(dir, `${name}.pem`), `${chain}${key}`, 0o600);
        }
        for (const old of state.written[name]?.files ?? [])
          if (!files.includes(old)) removeFile(join(dir, old));
      } catch (error) {
        skip(cert.id, cert.domains[0], (error as Error).message);
        continue;
      }
      state.written[name] = {
        certificateId: cert.id,
        fingerprint: cert.fingerprint,
        domains: cert.domains,
        files,
      };
      written.add(name);
      log.info(`wrote ${files.join(', ')} (certificate ${cert.id})`);
      checkpoint();
    }
  }
  let removed = 0;
  for (const [name, old] of Object.entries(state.written)) {
    if (desired.has(name)) continue;
    try {
      for (const file of old.files) removeFile(join(dir, file));
      if (options.format === 'nginx') removeDirIfEmpty(join(dir, name));
      log.info(`removed ${old.files.join(', ')} (no current certificate for ${name})`);
    } catch (error) {
      metrics.skippedTotal++;
      log.warn(`could not remove ${old.files.join(', ')}: ${(error as Error).message}`);
    }
    delete state.written[name];
    removed++;
  }
  metrics.skipped = skipped;
  const indexChanged = writeIndex(dir, options, state, indexOf(state));
  return { changed: written.size > 0 || removed > 0 || indexChanged, written };
}

/** nginx: a `map` include (server name → file name); HAProxy: the crt-list. Rewritten when it changes. */
function writeIndex(
  dir: string,
  options: AgentOptions,
  state: AgentState,
  index: Map<string, string[]>,
): boolean {
  if (options.format === 'caddy') return false;
  const lines: string[] = [];
  for (const [name, own] of index) {
    if (options.format === 'nginx') for (const d of own) lines.push(`${d} ${name};`);
    else lines.push(`${join(dir, `${name}.pem`)} ${own.join(' ')}`);
  }
  lines.sort();
  const file = options.format === 'nginx' ? NGINX_MAP_FILE : HAPROXY_CRT_LIST;
  const header =
    options.format === 'nginx'
      ? '# written by certq-agent: server name -> directory; include inside map $ssl_server_name … { hostnames; }\n'
      : '# written by certq-agent\n';
  const content = `${header}${lines.join('\n')}${lines.length ? '\n' : ''}`;
  const path = join(dir, file);
  let current: string | undefined;
  try {
    current = readFileSync(path, 'utf8');
  } catch {}
  if (current === content && state.indexFiles.includes(file)) return false;
  writeFileAtomic(path, content, 0o644);
  if (!state.indexFiles.includes(file)) state.indexFiles.push(file);
  return true;
}

async function runReload(command: string, log: Logger, metrics: AgentMetrics): Promise<void> {
  const started = Date.now();
  const code = await new Promise<number>((resolvePromise) => {
    const child = spawn('sh', ['-c', command], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', () => resolvePromise(127));
    child.on('exit', (c, signal) => resolvePromise(c ?? (signal ? 128 : 1)));
  });
  if (code !== 0) throw new Error(`reload command exited with ${code}: ${command}`);
  metrics.reloadsTotal++;
  log.info(`reloaded (${Date.now() - started} ms): ${command}`);
}
