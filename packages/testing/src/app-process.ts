import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';

export type AppProcess = ChildProcess & { exited: Promise<number | null>; output: () => string };

/**
 * One of certq's apps as operators run it: its own process (`tsx src/main.ts` in the app's folder),
 * configured by environment on top of this one's; what it prints is kept for failure messages.
 */
export function spawnApp(appDir: string, env: Record<string, string>): AppProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: appDir,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return Object.assign(child, { exited, output: () => output });
}
