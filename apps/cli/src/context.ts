import { type CertqClient, createCertqClient } from '@certq/sdk';
import type { Command } from 'commander';
import { usage } from './exit';
import { createOutput, type Output } from './output';

export interface GlobalOptions {
  api?: string;
  token?: string;
  json?: boolean;
}

export interface Context {
  client: CertqClient;
  out: Output;
  api: string;
}

/** The client and output of a command, from --api/--token (or CERTQ_API/CERTQ_TOKEN) and --json. */
export function contextOf(command: Command): Context {
  const options = command.optsWithGlobals<GlobalOptions>();
  const api = options.api ?? process.env.CERTQ_API;
  const token = options.token ?? process.env.CERTQ_TOKEN;
  if (!api) throw usage('no API URL: pass --api <url> or set CERTQ_API');
  if (!token) throw usage('no token: pass --token <token> or set CERTQ_TOKEN');
  let url: URL;
  try {
    url = new URL(api);
  } catch {
    throw usage(`--api: not a URL: ${api}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw usage(`--api: not an http(s) URL: ${api}`);
  return {
    client: createCertqClient({ baseUrl: api, token }),
    out: createOutput(Boolean(options.json)),
    api,
  };
}

/** Commander option parsers that refuse rather than guess. */
export function positiveInt(name: string, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max)
      throw usage(`${name}: expected a whole number from 1 to ${max}, got ${JSON.stringify(value)}`);
    return Number(value);
  };
}

export function nonNegativeInt(name: string, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) > max)
      throw usage(`${name}: expected a whole number from 0 to ${max}, got ${JSON.stringify(value)}`);
    return Number(value);
  };
}

const DURATION = /^(\d+)(s|m|h|d)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `--since 2h`, `--since 7d` or an ISO-8601 instant → a Date. */
export function parseSince(value: string, now = Date.now()): Date {
  const match = DURATION.exec(value);
  if (match) return new Date(now - Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]);
  const date = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(date.getTime()))
    throw usage(
      `--since: expected a duration (30m, 2h, 7d) or an ISO-8601 time, got ${JSON.stringify(value)}`,
    );
  return date;
}
