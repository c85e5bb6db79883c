/*
 * Everything @certq/testing offers but the fixtures (`test`, which calls vitest's `test.extend` when
 * imported, and that throws outside a vitest run): what code run without vitest imports, the benches.
 */
export * from './app-process';
export * from './fault-proxy';
export * from './http';
export * from './isolation';
export type { NamedServer, SilentResolver, StartNamedOptions } from './named';
export { startNamed, startSilentResolver } from './named';
export * from './restartable';
export * from './self-signed';
export { freePort } from './services';
export * from './settings';

/** Polls a condition until it holds (for state that lives in Postgres or another process). */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  {
    timeoutMs = 30_000,
    intervalMs = 50,
    message = 'condition',
  }: { timeoutMs?: number; intervalMs?: number; message?: string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
