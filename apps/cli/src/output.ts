import Table from 'cli-table3';

/** What every command writes through: a human table by default, JSON with --json. */
export interface Output {
  json: boolean;
  /** Human text on stdout (nothing in --json mode). */
  line(text: string): void;
  /** One JSON document on stdout (only in --json mode). */
  data(value: unknown): void;
  /** Notes and progress on stderr, in both modes. */
  note(text: string): void;
}

export function createOutput(json: boolean): Output {
  return {
    json,
    line: (text) => {
      if (!json) process.stdout.write(`${text}\n`);
    },
    data: (value) => {
      if (json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    },
    note: (text) => process.stderr.write(`${text}\n`),
  };
}

/** A table of rows (plain strings), sized to the content. */
export function table(head: string[], rows: (string | number | null | undefined)[][]): string {
  const t = new Table({ head, style: { head: [], border: [] } });
  for (const row of rows)
    t.push(row.map((cell) => (cell === null || cell === undefined ? '' : String(cell))));
  return t.toString();
}

/** `2026-12-01T20:04:17.123Z` → `2026-12-01 20:04:17Z`: tables stay narrow. */
export function shortTime(iso: string | null | undefined): string {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z` : '';
}
