import { mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import {
  npmPostgresBinaries,
  POSTGRES_REACHABLE_ROOT,
  type PostgresBinaries,
  startPrivatePostgres,
} from '../scripts/local-services';

/**
 * `pnpm start` from a checkout inside a folder only root may enter (`/root`, a fresh `mktemp -d`): a root
 * launcher runs PostgreSQL as `postgres`, which can reach neither the npm binaries in node_modules nor
 * the cluster in `.certq`. Faithful and cheap: the binaries are reached through a link inside a 0700
 * folder (every path to them crosses it, as in such a checkout), and the cluster folder lies in it too.
 */
describe('a private PostgreSQL from a checkout closed to the postgres user', () => {
  const closed = mkdtempSync(join(tmpdir(), 'certq-closed-'));
  const cleanups: (() => unknown)[] = [() => rmSync(closed, { recursive: true, force: true })];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('runs the npm binaries and keeps the cluster where the postgres user can reach them', async () => {
    expect(statSync(closed).mode & 0o777).toBe(0o700);
    const shipped = await npmPostgresBinaries();
    if (!shipped) throw new Error('the npm PostgreSQL binaries are missing: pnpm install');
    const home = join(closed, 'node_modules-postgres');
    symlinkSync(dirname(dirname(shipped.initdb)), home);
    const binaries: PostgresBinaries = {
      initdb: join(home, 'bin', 'initdb'),
      pgCtl: join(home, 'bin', 'pg_ctl'),
      source: 'npm binaries inside a closed folder',
    };
    const service = await startPrivatePostgres({ dir: join(closed, '.certq', 'pg'), binaries });
    const dataDir = /data in (\S+)$/.exec(service.description)![1]!;
    cleanups.push(() => service.stop());
    if (process.getuid?.() === 0) {
      // Root: the cluster was moved out of the closed folder (removed after the test).
      expect(dataDir.startsWith(`${POSTGRES_REACHABLE_ROOT}/`)).toBe(true);
      cleanups.unshift(() => rmSync(dirname(dataDir), { recursive: true, force: true }));
    }
    const client = new pg.Client({ connectionString: service.url });
    await client.connect();
    try {
      expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await client.end();
    }
  }, 120_000);
});
