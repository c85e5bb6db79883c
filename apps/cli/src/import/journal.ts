import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';

/**
 * The import's record of what the API accepted, an append-only JSON-lines file next to the CSV
 * (`<file>.certq-import`). Each record is appended with one write before the import moves on, so a
 * killed process leaves every finished request recorded; the next run skips those lines and sends
 * the rest.
 */
export type JournalRecord =
  | { t: 'begin'; version: 1; sha256: string; lines: number; api: string; tenant: string | null; at: string }
  /** A request is about to be sent with these file lines (as [from, to] ranges). */
  | { t: 'send'; seq: number; lines: [number, number][] }
  /** Its 202: the order id of each of its lines, in order. */
  | { t: 'accepted'; seq: number; ids: string[] }
  | { t: 'refused'; line: number; reason: string }
  | { t: 'end'; at: string };

export interface JournalState {
  begin?: Extract<JournalRecord, { t: 'begin' }>;
  /** File line → order id. */
  accepted: Map<number, string>;
  /** File line → why it was refused. */
  refused: Map<number, string>;
  /** Lines of the last request whose answer never arrived (they are sent again). */
  unanswered: number[];
  ended: boolean;
  lastSeq: number;
}

export function toRanges(lines: readonly number[]): [number, number][] {
  const ranges: [number, number][] = [];
  for (const line of lines) {
    const last = ranges[ranges.length - 1];
    if (last && line === last[1] + 1) last[1] = line;
    else ranges.push([line, line]);
  }
  return ranges;
}

export function fromRanges(ranges: readonly [number, number][]): number[] {
  const lines: number[] = [];
  for (const [from, to] of ranges) for (let line = from; line <= to; line++) lines.push(line);
  return lines;
}

export class Journal {
  constructor(readonly path: string) {}

  exists(): boolean {
    return existsSync(this.path);
  }

  remove() {
    rmSync(this.path, { force: true });
  }

  append(record: JournalRecord) {
    appendFileSync(this.path, `${JSON.stringify(record)}\n`);
  }

  load(): JournalState {
    const state: JournalState = {
      accepted: new Map(),
      refused: new Map(),
      unanswered: [],
      ended: false,
      lastSeq: 0,
    };
    if (!this.exists()) return state;
    const sent = new Map<number, [number, number][]>();
    const text = readFileSync(this.path, 'utf8');
    const rows = text.split('\n').filter(Boolean);
    for (const [index, row] of rows.entries()) {
      let record: JournalRecord;
      try {
        record = JSON.parse(row);
      } catch {
        // Only a crash of the machine mid-write can cut the last line short: that request is unanswered.
        if (index === rows.length - 1) break;
        throw new Error(`${this.path}: line ${index + 1} is not JSON; remove the file or use --restart`);
      }
      switch (record.t) {
        case 'begin':
          state.begin = record;
          break;
        case 'send':
          sent.set(record.seq, record.lines);
          state.lastSeq = Math.max(state.lastSeq, record.seq);
          break;
        case 'accepted': {
          const lines = fromRanges(sent.get(record.seq) ?? []);
          if (lines.length !== record.ids.length)
            throw new Error(
              `${this.path}: request ${record.seq} has ${record.ids.length} ids for ${lines.length} lines`,
            );
          for (const [i, line] of lines.entries()) state.accepted.set(line, record.ids[i]!);
          sent.delete(record.seq);
          break;
        }
        case 'refused':
          state.refused.set(record.line, record.reason);
          break;
        case 'end':
          state.ended = true;
          break;
      }
    }
    // A request answered 400 is followed by its lines' refusals and a new request; only lines that
    // are neither accepted nor refused were really left without an answer.
    for (const ranges of sent.values())
      for (const line of fromRanges(ranges))
        if (!state.accepted.has(line) && !state.refused.has(line)) state.unanswered.push(line);
    return state;
  }
}
