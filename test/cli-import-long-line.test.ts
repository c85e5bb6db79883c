import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { apiTest } from '../apps/api/test/helpers';
import { runCli } from './cli-run';

// A small body limit, so one line of many long names is larger than the API takes in one request.
const it = apiTest({ env: { BODY_LIMIT_BYTES: '8192' } });
const run = randomBytes(3).toString('hex');

it('refuses one over-long line alone, goes on, and a resume does not send it again', async ({
  api,
  tmpDir: dir,
}) => {
  const tenant = await api.createTenant();
  const long = Array.from({ length: 100 }, (_, i) => `${'x'.repeat(60)}-${i}.long-${run}.example.com`);
  const rows = ['domains'];
  for (let i = 0; i < 30; i++) rows.push(i === 12 ? `"${long.join(' ')}"` : `l${i}-${run}.example.com`);
  const file = join(dir, 'long.csv');
  await writeFile(file, `${rows.join('\n')}\n`);
  const credentials = { api: api.url, token: tenant.token };
  const args = ['--json', 'orders', 'import', file, '--chunk-size', '10'];

  const first = await runCli(args, credentials);
  expect(first.code, first.stderr).not.toBe(0); // a refused line makes the exit code say so
  expect(first.json()).toMatchObject({ lines: 30, accepted: 29, refused: 1 });
  expect(first.json().refusedLines).toEqual([
    { line: 14, reason: 'the line is larger than the API accepts in one request (413)' },
  ]);
  const orders = await api.countOrders();

  const again = await runCli(args, credentials);
  expect(again.json()).toMatchObject({ accepted: 29, refused: 1, resumed: true });
  expect(await api.countOrders()).toBe(orders);
});
