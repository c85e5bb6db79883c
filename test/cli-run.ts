import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export const CERTQ_BIN = join(import.meta.dirname, '..', 'apps', 'cli', 'bin', 'certq.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (for --json runs). */
  // biome-ignore lint/suspicious/noExplicitAny: CLI output is inspected field by field
  json(): any;
}

export interface CliRun {
  child: ChildProcess;
  done: Promise<CliResult>;
}

/** Starts `certq` as a user would (its own process, the bin script), with CERTQ_API/CERTQ_TOKEN. */
export function startCli(args: string[], env: { api?: string; token?: string } = {}): CliRun {
  const child = spawn(process.execPath, [CERTQ_BIN, ...args], {
    env: {
      ...process.env,
      ...(env.api ? { CERTQ_API: env.api } : {}),
      ...(env.token ? { CERTQ_TOKEN: env.token } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({
        code,
        signal,
        stdout,
        stderr,
        json: () => {
          try {
            return JSON.parse(stdout);
          } catch {
            throw new Error(`certq ${args.join(' ')} printed no JSON (exit ${code}):\n${stdout}\n${stderr}`);
          }
        },
      }),
    );
  });
  return { child, done };
}

export function runCli(args: string[], env: { api?: string; token?: string } = {}): Promise<CliResult> {
  return startCli(args, env).done;
}
