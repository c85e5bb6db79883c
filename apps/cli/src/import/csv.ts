import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { OrderInput } from '@certq/sdk';
import { CsvError, parse } from 'csv-parse';
import { usage } from '../exit';

export const COLUMNS = ['domains', 'algorithm', 'ca', 'tenantId'] as const;
type Column = (typeof COLUMNS)[number];

/** One data line of the file: the order it asks for, or why it cannot be one. */
export type CsvLine = { line: number; order: OrderInput } | { line: number; refused: string };

function parser() {
  return parse({ info: true, skip_empty_lines: true, relax_column_count: true, trim: true, bom: true });
}

function csvFailure(file: string, error: unknown): Error {
  if (error instanceof CsvError) return usage(`${file}: ${error.message}`);
  return error as Error;
}

/** Header → column positions; unknown or missing columns stop the import before anything is sent. */
function columnsOf(file: string, header: string[]): Map<Column, number> {
  const positions = new Map<Column, number>();
  for (const [index, name] of header.entries()) {
    if (!(COLUMNS as readonly string[]).includes(name))
      throw usage(
        `${file}: unknown column ${JSON.stringify(name)} in the header (columns: ${COLUMNS.join(', ')})`,
      );
    if (positions.has(name as Column)) throw usage(`${file}: column ${name} appears twice in the header`);
    positions.set(name as Column, index);
  }
  if (!positions.has('domains'))
    throw usage(`${file}: the header has no domains column (columns: ${COLUMNS.join(', ')})`);
  return positions;
}

/** First pass: the file's SHA-256 (a resume must read the same file) and its number of data lines. */
export async function surveyCsv(file: string): Promise<{ sha256: string; lines: number }> {
  const hash = createHash('sha256');
  const input = createReadStream(file);
  input.on('data', (chunk) => hash.update(chunk));
  const records = input.pipe(parser());
  input.on('error', (error) => records.destroy(error));
  let count = -1;
  let header = true;
  try {
    for await (const { record } of records as AsyncIterable<{ record: string[] }>) {
      if (header) {
        columnsOf(file, record);
        header = false;
      }
      count++;
    }
  } catch (error) {
    throw csvFailure(file, error);
  }
  if (header) throw usage(`${file}: empty file (expected a header line with a domains column)`);
  return { sha256: hash.digest('hex'), lines: count };
}

/**
 * Second pass: each data line as an order, in file order. `--tenant` fills lines without a
 * tenantId; a line naming another tenant is refused rather than silently reassigned.
 */
export async function* readOrders(file: string, tenant: string | undefined): AsyncGenerator<CsvLine> {
  const records = createReadStream(file).pipe(parser());
  let columns: Map<Column, number> | undefined;
  let width = 0;
  try {
    for await (const { record, info } of records as AsyncIterable<{
      record: string[];
      info: { lines: number };
    }>) {
      if (!columns) {
        columns = columnsOf(file, record);
        width = record.length;
        continue;
      }
      const line = info.lines;
      if (record.length !== width) {
        yield { line, refused: `expected ${width} field(s) as in the header, found ${record.length}` };
        continue;
      }
      const field = (name: Column) => {
        const index = columns!.get(name);
        return index === undefined ? '' : record[index]!;
      };
      const domains = field('domains').split(/\s+/).filter(Boolean);
      if (!domains.length) {
        yield { line, refused: 'domains: empty' };
        continue;
      }
      const tenantId = field('tenantId') || tenant;
      if (tenant && field('tenantId') && field('tenantId') !== tenant) {
        yield { line, refused: `tenantId: ${field('tenantId')} is not the --tenant given (${tenant})` };
        continue;
      }
      const order: OrderInput = { domains };
      if (field('algorithm')) order.algorithm = field('algorithm') as OrderInput['algorithm'];
      if (field('ca')) order.ca = field('ca') as OrderInput['ca'];
      if (tenantId) order.tenantId = tenantId;
      yield { line, order };
    }
  } catch (error) {
    throw csvFailure(file, error);
  }
}
