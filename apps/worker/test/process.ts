import { fileURLToPath } from 'node:url';
import { type AppProcess, spawnApp } from '@certq/testing';

const WORKER_DIR = fileURLToPath(new URL('..', import.meta.url));

/** The worker as operators run it: its own process, configured by environment (logs at warn). */
export function spawnWorker(env: Record<string, string>): AppProcess {
  return spawnApp(WORKER_DIR, { ...env, LOG_LEVEL: env.LOG_LEVEL ?? 'warn' });
}
