import { parseArgs } from 'node:util';

export type Format = 'nginx' | 'haproxy';

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
}

export const USAGE = `usage: certq-agent --api <url> --token <edge token> --dir <dir>
                   [--format nginx|haproxy] [--reload "<command>"] [--once]
                   [--wait <seconds>] [--debounce-ms <ms>]

Keeps <dir> in step with certq's current certificates: a full sync, then the change feed.
  --api          certq's base URL (or CERTQ_API)
  --token        an edge token (or CERTQ_TOKEN); prefer the variable, arguments show in ps
  --dir          where the files go (created if missing)
  --format       nginx: <name>/fullchain.pem, <name>/privkey.pem, certq-names.map (default)
                 haproxy: <name>.pem (chain then key), crt-list.txt
  --reload       a shell command run once after each batch of changes
  --once         sync, reload if anything changed, and exit
  --wait         long-poll seconds, 1-60 (default 30)
  --debounce-ms  wait this long for more changes before writing (default 500)`;

export class UsageError extends Error {}

/** Parses and checks the command line; throws UsageError with a message naming what is wrong. */
export function parseAgentArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentOptions | 'help' {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
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
  if (format !== 'nginx' && format !== 'haproxy')
    throw new UsageError(`--format: must be nginx or haproxy, not ${format}`);
  const waitSeconds = integer('--wait', values.wait ?? '30', 1, 60);
  const debounceMs = integer('--debounce-ms', values['debounce-ms'] ?? '500', 0, 60_000);
  return {
    api: url.toString().replace(/\/+$/, ''),
    token,
    dir: values.dir,
    format,
    reload: values.reload,
    once: values.once ?? false,
    waitSeconds,
    debounceMs,
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
      wait: { type: 'string' },
      'debounce-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

function integer(flag: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw)) throw new UsageError(`${flag}: must be a whole number, not ${raw}`);
  const value = Number(raw);
  if (value < min || value > max) throw new UsageError(`${flag}: must be between ${min} and ${max}`);
  return value;
}
