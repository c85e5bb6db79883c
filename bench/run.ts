import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BenchRow } from './lib';

/**
 * `pnpm bench`: runs every `bench/*.bench.ts` (each exports `run(): Promise<BenchRow[]>`) one after
 * another — never in parallel, they would measure each other — and prints one table.
 * `pnpm bench api` runs only the suites whose file name contains "api".
 */
const filter = process.argv[2];
const dir = fileURLToPath(new URL('.', import.meta.url));
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts') && (!filter || f.includes(filter)))
  .sort();

const rows: BenchRow[] = [];
for (const file of files) {
  process.stderr.write(`running ${file}…\n`);
  const mod = (await import(`./${file}`)) as { run(): Promise<BenchRow[]> };
  const started = Date.now();
  rows.push(...(await mod.run()));
  process.stderr.write(`  ${file} took ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}

const format = (v: number) =>
  Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(3);
const table = rows.map((r) => [
  r.suite,
  r.metric,
  format(r.value),
  r.unit,
  r.goal ?? '',
  r.met === undefined ? '' : r.met ? 'yes' : 'NO',
]);
const header = ['suite', 'metric', 'value', 'unit', 'goal', 'met'];
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (cells: string[]) =>
  `| ${cells.map((c, i) => (i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
console.log(line(header));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const row of table) console.log(line(row));
process.exit(0);
