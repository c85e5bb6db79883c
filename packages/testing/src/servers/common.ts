import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBinary } from '../probes';

/** A TLS server started for one test: private config, temp dir, loopback port. */
export interface TlsServer {
  /** The TLS port on 127.0.0.1. */
  port: number;
  dir: string;
  /** What the server printed, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

/** The binary, or an error naming the Debian package to install (tests fail, never skip). */
export function requireBinary(name: string, debianPackage: string): string {
  const found = findBinary(name, ['/usr/sbin', '/usr/bin', '/usr/local/bin']);
  if (!found)
    throw new Error(
      `${name} is not installed: the delivery tests need a real ${name}. Install it with ` +
        `\`apt-get install ${debianPackage}\` (Debian package "${debianPackage}"; .ci/run does this).`,
    );
  return found;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `certq-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface Started {
  child: ChildProcess;
  output(): string;
}

export function startProcess(binary: string, args: string[], env: NodeJS.ProcessEnv = process.env): Started {
  let output = '';
  const child = spawn(binary, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, output: () => output };
}

export async function waitForPort(port: number, what: string, output: () => string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline)
      throw new Error(`${what} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts a server's binary and waits until it listens on `port`; on failure stops it and removes its
 * dir. `stop()` stops it (with `stopSignal`) and removes the dir.
 */
export async function launchServer(options: {
  binary: string;
  args: string[];
  port: number;
  dir: string;
  what: string;
  env?: NodeJS.ProcessEnv;
  stopSignal?: NodeJS.Signals;
}): Promise<TlsServer & { child: ChildProcess }> {
  const started = startProcess(options.binary, options.args, options.env);
  const stop = async () => {
    await stopChild(started.child, options.stopSignal);
    removeDir(options.dir);
  };
  try {
    await waitForPort(options.port, options.what, started.output);
  } catch (error) {
    await stop();
    throw error;
  }
  return { port: options.port, dir: options.dir, output: started.output, child: started.child, stop };
}
