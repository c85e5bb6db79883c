import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AgentOptions } from './args';
import { AuthError, CertqClient } from './client';
import {
  fileNameOf,
  removeDirIfEmpty,
  removeFile,
  splitBundle,
  writeFileAtomic,
  writeFilesAtomic,
} from './files';
import { type AgentState, loadState, removeStaleTempFiles, saveState } from './state';

export type Log = (line: string) => void;

export const NGINX_MAP_FILE = 'certq-names.map';
export const HAPROXY_CRT_LIST = 'crt-list.txt';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The agent's loop: a full sync (the feed from the saved cursor, 0 the first time), then the feed
 * followed by long-polls. Changes are gathered into a batch (until the feed is quiet for
 * `debounceMs`), the files of every name whose certificate changed are replaced, the state file is
 * saved (files first, so a crash replays a batch and never skips one), and the reload runs once.
 * While certq is unreachable the files on disk stay as they are and the agent retries with backoff.
 * Returns the exit code: 0 (`--once` done), 1 (`--once` and certq unreachable), 2 (token refused).
 */
export async function runAgent(options: AgentOptions, log: Log): Promise<number> {
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  removeStaleTempFiles(dir);
  const state = loadState(dir, options.format);
  const client = new CertqClient(options.api, options.token);
  let cursor = state.cursor;
  let dirty = true; // the first pass always reconciles the files with the state
  let reloadPending = false;
  let backoffMs = 1000;
  log(`certq-agent: ${options.format} layout in ${dir}, from cursor ${cursor}`);

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
        log(
          `change ${change.cursor}: ${change.change} ${change.domains.join(' ')} (certificate ${change.certificateId}, tenant ${change.tenantId})`,
        );
      }
      applied += page.changes.length;
      cursor = page.nextCursor;
      if (page.changes.length < 1000) return applied;
      wait = 0;
    }
  }

  for (;;) {
    try {
      const seen = await drain(dirty ? 0 : options.waitSeconds);
      if (seen > 0 || dirty) {
        // Debounce: a renewal run changes many certificates at once; write and reload once for all.
        if (seen > 0 && options.debounceMs > 0) {
          do await sleep(options.debounceMs);
          while ((await drain(0)) > 0);
        }
        const changed = await writeFiles(dir, options, state, client, log);
        state.cursor = cursor;
        saveState(dir, state);
        if (changed) reloadPending = true;
        dirty = false;
      }
      if (reloadPending) {
        if (options.reload) await runReload(options.reload, log);
        reloadPending = false;
      }
      backoffMs = 1000;
      if (options.once) return 0;
    } catch (error) {
      if (error instanceof AuthError) {
        log(`certq-agent: ${error.message}; check --token (an edge token from POST /v1/edge-tokens)`);
        return 2;
      }
      if (options.once) {
        log(`certq-agent: ${(error as Error).message}; files left as they were`);
        return 1;
      }
      log(
        `certq-agent: ${(error as Error).message}; keeping the current files, retrying in ${backoffMs / 1000} s`,
      );
      // Whatever part of a batch was done is redone from the saved state: reread from its cursor.
      Object.assign(state, loadState(dir, options.format));
      cursor = state.cursor;
      dirty = true;
      await sleep(backoffMs * (0.75 + Math.random() * 0.5));
      backoffMs = Math.min(backoffMs * 2, 30_000);
    }
  }
}

/** Makes the directory match `state.current`; returns whether any file changed. */
async function writeFiles(
  dir: string,
  options: AgentOptions,
  state: AgentState,
  client: CertqClient,
  log: Log,
): Promise<boolean> {
  // One certificate per file name; the newest wins a name two certificates share.
  const desired = new Map<string, { id: string; since: number; domains: string[]; fingerprint: string }>();
  for (const [id, cert] of Object.entries(state.current)) {
    const name = fileNameOf(cert.domains[0] ?? '');
    if (!name) {
      log(`skipping certificate ${id}: ${cert.domains[0]} cannot be a file name`);
      continue;
    }
    const held = desired.get(name);
    if (!held || held.since < cert.since) desired.set(name, { id, ...cert });
  }
  let changed = false;
  for (const [name, cert] of desired) {
    if (state.written[name]?.certificateId === cert.id) continue;
    const bundle = await client.bundle(cert.id);
    if (bundle === null) continue; // replaced meanwhile: the feed's next change says by what
    const { chain, key } = splitBundle(bundle);
    const files =
      options.format === 'nginx' ? [`${name}/fullchain.pem`, `${name}/privkey.pem`] : [`${name}.pem`];
    if (options.format === 'nginx') {
      writeFilesAtomic([
        { path: join(dir, name, 'fullchain.pem'), content: chain, mode: 0o644 },
        { path: join(dir, name, 'privkey.pem'), content: key, mode: 0o600 },
      ]);
    } else {
      writeFileAtomic(join(dir, `${name}.pem`), `${chain}${key}`, 0o600);
    }
    for (const old of state.written[name]?.files ?? []) if (!files.includes(old)) removeFile(join(dir, old));
    state.written[name] = {
      certificateId: cert.id,
      fingerprint: cert.fingerprint,
      domains: cert.domains,
      files,
    };
    log(`wrote ${files.join(', ')} (certificate ${cert.id})`);
    changed = true;
  }
  for (const [name, written] of Object.entries(state.written)) {
    if (desired.has(name)) continue;
    for (const file of written.files) removeFile(join(dir, file));
    if (options.format === 'nginx') removeDirIfEmpty(join(dir, name));
    delete state.written[name];
    log(`removed ${written.files.join(', ')} (no current certificate for ${name})`);
    changed = true;
  }
  if (writeIndex(dir, options, state)) changed = true;
  return changed;
}

/** nginx: a `map` include (server name → file name); HAProxy: the crt-list. Rewritten when it changes. */
function writeIndex(dir: string, options: AgentOptions, state: AgentState): boolean {
  const entries = Object.entries(state.written).sort(([a], [b]) => a.localeCompare(b));
  const claimed = new Set<string>();
  const lines: string[] = [];
  // Newest certificate first, so a name two certificates cover goes to the newer one.
  const byNewest = [...entries].sort(
    ([, a], [, b]) =>
      (state.current[b.certificateId]?.since ?? 0) - (state.current[a.certificateId]?.since ?? 0),
  );
  for (const [name, written] of byNewest) {
    const own = written.domains.filter((d) => !claimed.has(d));
    for (const d of own) claimed.add(d);
    if (own.length === 0) continue;
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

async function runReload(command: string, log: Log): Promise<void> {
  const started = Date.now();
  const code = await new Promise<number>((resolvePromise) => {
    const child = spawn('sh', ['-c', command], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', () => resolvePromise(127));
    child.on('exit', (c, signal) => resolvePromise(c ?? (signal ? 128 : 1)));
  });
  if (code !== 0) throw new Error(`reload command exited with ${code}: ${command}`);
  log(`reloaded (${Date.now() - started} ms): ${command}`);
}
