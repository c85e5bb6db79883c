import { parseArgs } from 'node:util';

export type Format = 'nginx' | 'haproxy' | 'caddy';

/** Where a server listens or a socket is: `host:port` (TCP) or a Unix socket path. */
export type Address = { host: string; port: number } | { path: string };

export interface AgentOptions {
  api: string;
  token: string;
  dir: string;
  format: Format;
  reload: string | undefined;
  once: boolean;
  /** Long-poll length, seconds (≤ 60). */
  waitSeconds: number;
  /** Quiet time after a change before the batch is written and the reload runs. */
  debounceMs: number;
  /** caddy: where to answer Caddy's `get_certificate http`. */
  listen: Address | undefined;
  /** haproxy: HAProxy's Runtime API (stats socket, level admin). */
  runtimeApi: Address | undefined;
  /** Where to answer /healthz and /metrics. */
  health: Address | undefined;
  /** /healthz answers 503 once the last successful sync is older than this. */
  staleAfterSeconds: number;
}

export const USAGE = `usage: certq-agent --api <url> --token <edge token> --dir <dir>
                   [--format nginx|haproxy|caddy] [--reload "<command>"] [--once]
                   [--listen <host:port|unix:path>] [--runtime-api <socket path|host:port>]
                   [--health <host:port>] [--wait <seconds>] [--debounce-ms <ms>]
       certq-agent --version | --help

Keeps <dir> in step with certq's current certificates: a full sync, then the change feed.
  --api          certq's base URL (or CERTQ_API)
  --token        an edge token (or CERTQ_TOKEN); prefer the variable, arguments show in ps
  --dir          where the files go (created if missing)
  --format       nginx: <name>/fullchain.pem, <name>/privkey.pem, certq-names.map (default)
                 haproxy: <name>.pem (chain then key), crt-list.txt
                 caddy: <name>.pem (chain then key), served to Caddy by --listen
  --reload       a shell command run once after each batch of changes
  --once         sync, reload if anything changed, and exit
  --listen       caddy: answer get_certificate http here (loopback host:port or unix:/path)
  --runtime-api  haproxy: apply changes through HAProxy's Runtime API (stats socket, level admin)
                 instead of --reload
  --health       answer GET /healthz and GET /metrics here (host:port)
  --stale-after  /healthz answers 503 when the last sync is older than this (seconds, default 3 x wait + 30)
  --wait         long-poll seconds, 1-60 (default 30)
  --debounce-ms  wait this long for more changes before writing (default 500)
  --version      print the version and exit

Exit codes: 0 done (--once) or stopped by SIGTERM/SIGINT; 1 certq unreachable with --once, or an
unexpected error; 2 the token was refused; 64 bad arguments.`;

export class UsageError extends Error {}

/** Parses and checks the command line; throws UsageError with a message naming what is wrong. */
export function parseAgentArgs(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): AgentOptions | 'help' | 'version' {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (values.version) return 'version';
  if (positionals.length) throw new UsageError(`unexpected argument: ${positionals[0]}`);
  const api = values.api ?? env.CERTQ_API;
  const token = values.token ?? env.CERTQ_TOKEN;
  if (!api) throw new UsageError('--api is required (or set CERTQ_API)');
  if (!token) throw new UsageError('--token is required (or set CERTQ_TOKEN)');
  if (!values.dir) throw new UsageError('--dir is required');
  let url: URL;
  try {
    url = new URL(api);
  } catch {
    throw new UsageError(`--api: not a URL: ${api}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError('--api: must be http(s)://');
  const format = values.format ?? 'nginx';
  if (format !== 'nginx' && format !== 'haproxy' && format !== 'caddy')
    throw new UsageError(`--format: must be nginx, haproxy or caddy, not ${format}`);
  const once = values.once ?? false;
  const listen = values.listen === undefined ? undefined : address('--listen', values.listen);
  if (listen && format !== 'caddy') throw new UsageError('--listen: only with --format caddy');
  if (format === 'caddy' && !listen && !once)
    throw new UsageError('--listen is required with --format caddy (or --once to write the files only)');
  const runtimeApi =
    values['runtime-api'] === undefined ? undefined : address('--runtime-api', values['runtime-api']);
  if (runtimeApi && format !== 'haproxy') throw new UsageError('--runtime-api: only with --format haproxy');
  const health = values.health === undefined ? undefined : address('--health', values.health);
  const waitSeconds = integer('--wait', values.wait ?? '30', 1, 60);
  const debounceMs = integer('--debounce-ms', values['debounce-ms'] ?? '500', 0, 60_000);
  const staleAfterSeconds = integer(
    '--stale-after',
    values['stale-after'] ?? String(3 * waitSeconds + 30),
    1,
    86_400,
  );
  return {
    api: url.toString().replace(/\/+$/, ''),
    token,
    dir: values.dir,
    format,
    reload: values.reload,
    once,
    waitSeconds,
    debounceMs,
    listen,
    runtimeApi,
    health,
    staleAfterSeconds,
  };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      api: { type: 'string' },
      token: { type: 'string' },
      dir: { type: 'string' },
      format: { type: 'string' },
      reload: { type: 'string' },
      once: { type: 'boolean' },
      listen: { type: 'string' },
      'runtime-api': { type: 'string' },
      health: { type: 'string' },
      'stale-after': { type: 'string' },
      wait: { type: 'string' },
      'debounce-ms': { type: 'string' },
      version: { type: 'boolean', short: 'V' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

/** `host:port`, `[v6]:port`, `unix:/path`, or (for sockets) a plain path. */
export function address(flag: string, raw: string): Address {
  if (raw.startsWith('unix:')) return { path: raw.slice(5) };
  if (raw.startsWith('/') || raw.startsWith('.')) return { path: raw };
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(raw);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65_535)
    throw new UsageError(`${flag}: must be host:port or unix:/path, not ${raw}`);
  return { host: (match[1] ?? match[2])!, port };
}

export function describeAddress(address: Address): string {
  return 'path' in address ? `unix:${address.path}` : `${address.host}:${address.port}`;
}

function integer(flag: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw)) throw new UsageError(`${flag}: must be a whole number, not ${raw}`);
  const value = Number(raw);
  if (value < min || value > max) throw new UsageError(`${flag}: must be between ${min} and ${max}`);
  return value;
}
