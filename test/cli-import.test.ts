import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { it } from '../apps/api/test/helpers';
import { runCli, startCli } from './cli-run';

const run = randomBytes(3).toString('hex');

// No worker: imported orders stay verifying, which is all an import needs.

type Expect = { kind: 'ok' } | { kind: 'refused'; reason: RegExp } | { kind: 'duplicate'; of: number };

/**
 * 25,000 data lines (file lines 2…25001): mostly distinct orders, with some lines the API refuses
 * (a bad hostname, an unknown algorithm), some the CLI refuses itself (no domains, a wrong number of
 * fields), and duplicates: the same domain set written differently (order, case), once across
 * chunks.
 */
function buildCsv(size: number) {
  const rows = ['domains,algorithm,ca'];
  const expected = new Map<number, Expect>();
  const domainsOf = (i: number) => `d${i}-${run}.example.com www.d${i}-${run}.example.com`;
  for (let i = 0; i < size; i++) {
    const line = i + 2;
    const previous = expected.get(line - 1);
    if (i % 997 === 500) {
      rows.push(`bad..d${i}-${run}.example.com,,`);
      expected.set(line, { kind: 'refused', reason: /^domains\[0\]: / });
    } else if (i % 2003 === 1000) {
      rows.push(`${domainsOf(i)},DSA,`);
      expected.set(line, { kind: 'refused', reason: /^algorithm: / });
    } else if (i % 4999 === 7) {
      rows.push('"",ECC,google');
      expected.set(line, { kind: 'refused', reason: /^domains: empty$/ });
    } else if (i === 12_345) {
      rows.push(`${domainsOf(i)},ECC,google,extra`);
      expected.set(line, { kind: 'refused', reason: /^expected 3 field\(s\) as in the header, found 4$/ });
    } else if (i % 1009 === 300 && previous?.kind === 'ok') {
      // The previous line's set, reversed and upper-cased: the API normalises it to the same set.
      rows.push(
        `"${domainsOf(i - 1)
          .split(' ')
          .reverse()
          .join(' ')
          .toUpperCase()}",ECC,`,
      );
      expected.set(line, { kind: 'duplicate', of: line - 1 });
    } else if (i === 24_000) {
      rows.push(`${domainsOf(0)},,`);
      expected.set(line, { kind: 'duplicate', of: 2 });
    } else {
      rows.push(`${domainsOf(i)},${i % 2 ? 'RSA' : ''},${i % 3 ? '' : 'letsencrypt'}`);
      expected.set(line, { kind: 'ok' });
    }
  }
  return { text: `${rows.join('\n')}\n`, expected };
}

async function journalRecords(path: string) {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((row) => JSON.parse(row) as { t: string; seq?: number; ids?: string[] });
}

describe('certq orders import', () => {
  it('imports 25,000 lines in three bulk chunks and accounts for every accepted, duplicate and refused line', async ({
    api,
    tmpDir: dir,
  }) => {
    const tenant = await api.createTenant();
    const { text, expected } = buildCsv(25_000);
    const file = join(dir, 'domains.csv');
    await writeFile(file, text);
    const before = await api.countOrders();

    const started = Date.now();
    const result = await runCli(['--json', 'orders', 'import', file, '--tenant', tenant.id], {
      api: api.url,
      token: api.config.ADMIN_TOKEN,
    });
    const elapsed = Date.now() - started;
    expect(result.code, result.stderr).toBe(7); // done, some lines refused
    const summary = result.json();

    const want = { ok: 0, refused: 0, duplicate: 0 };
    for (const e of expected.values()) want[e.kind]++;
    expect(want.refused).toBeGreaterThan(40);
    expect(want.duplicate).toBeGreaterThan(20);
    expect(summary).toMatchObject({
      file: 'domains.csv',
      lines: 25_000,
      accepted: want.ok,
      duplicate: want.duplicate,
      refused: want.refused,
      resumed: false,
    });
    // Every refused line is named, with its reason.
    for (const { line, reason } of summary.refusedLines) {
      const e = expected.get(line);
      expect(e?.kind, `line ${line}`).toBe('refused');
      expect(reason).toMatch((e as { reason: RegExp }).reason);
    }
    for (const { line, duplicateOf } of summary.duplicateLines)
      expect(expected.get(line), `line ${line}`).toEqual({ kind: 'duplicate', of: duplicateOf });

    // Stored exactly once each, and in three chunks of at most 10,000 (400s re-send the rest).
    expect((await api.countOrders()) - before).toBe(want.ok);
    const records = await journalRecords(`${file}.certq-import`);
    const accepted = records.filter((r) => r.t === 'accepted');
    expect(accepted).toHaveLength(3);
    expect(accepted.map((r) => r.ids!.length).reduce((a, b) => a + b)).toBe(want.ok + want.duplicate);
    for (const r of accepted) expect(r.ids!.length).toBeLessThanOrEqual(10_000);
    expect(records.at(-1)!.t).toBe('end');
    console.info(
      `25,000-line import: ${elapsed} ms with the CLI's start; the import ${summary.elapsedMs} ms, ` +
        `of which ${summary.apiMs} ms waiting for the API (${summary.requests} requests)`,
    );

    // Run again: the journal says it is done, nothing is sent, the same summary comes back.
    const again = await runCli(['--json', 'orders', 'import', file, '--tenant', tenant.id], {
      api: api.url,
      token: api.config.ADMIN_TOKEN,
    });
    expect(again.code).toBe(7);
    expect(again.json()).toMatchObject({
      accepted: want.ok,
      duplicate: want.duplicate,
      refused: want.refused,
      requests: 0,
    });
    expect((await api.countOrders()) - before).toBe(want.ok);
  });

  it('resumes after being killed mid-way without creating an order twice', async ({ api, tmpDir: dir }) => {
    const tenant = await api.createTenant();
    // Five chunks: enough to be killed between two of them (the 25,000-line test covers volume).
    const size = 10_000;
    const rows = ['domains'];
    for (let i = 0; i < size; i++) rows.push(`r${i}-${run}.example.com`);
    const file = join(dir, 'resume.csv');
    await writeFile(file, `${rows.join('\n')}\n`);
    const journal = `${file}.certq-import`;
    const before = await api.countOrders();
    const args = ['--json', 'orders', 'import', file, '--chunk-size', '2000'];
    const credentials = { api: api.url, token: tenant.token };

    // Kill it while a request is in flight, after at least one chunk was accepted.
    const first = startCli(args, credentials);
    let killedIn = '';
    for (;;) {
      const records = await journalRecords(journal);
      const last = records.at(-1);
      if (records.some((r) => r.t === 'accepted') && last?.t === 'send') {
        first.child.kill('SIGKILL');
        killedIn = `request ${last.seq}`;
        break;
      }
      if (records.some((r) => r.t === 'end'))
        throw new Error('the import finished before it could be interrupted');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const killed = await first.done;
    expect(killed.signal).toBe('SIGKILL');
    const partial = (await api.countOrders()) - before;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(size);

    const resumed = await runCli(args, credentials);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resuming: \d+ line\(s\) of an unanswered request are sent again/);
    expect(resumed.json()).toMatchObject({
      lines: size,
      accepted: size,
      duplicate: 0,
      refused: 0,
      resumed: true,
    });
    // One order per line, whether the killed request had been stored or not.
    expect((await api.countOrders()) - before, `killed in ${killedIn}`).toBe(size);
  });

  it('refuses a file it cannot read as an order list before sending anything', async ({
    api,
    tmpDir: dir,
  }) => {
    const credentials = { api: api.url, token: api.config.ADMIN_TOKEN };
    const noDomains = join(dir, 'no-domains.csv');
    await writeFile(noDomains, 'domain,ca\nexample.com,google\n');
    const unknown = await runCli(['orders', 'import', noDomains], credentials);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown column "domain"/);
    const missing = await runCli(['orders', 'import', join(dir, 'absent.csv')], credentials);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no such file/);
  });
});
