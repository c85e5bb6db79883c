import { readFileSync } from 'node:fs';

/** One IdnaTestV2 line: the source and what UTS #46 ToASCII (nontransitional, every flag on) gives. */
export interface IdnaVector {
  line: number;
  source: string;
  /** The A-label form; meaningful when `errors` is empty. */
  ascii: string;
  /** Status codes of toAsciiN (`[]` when the name is valid). */
  errors: string[];
}

const unescapeCodePoints = (text: string) =>
  text
    .replace(/\\u([0-9A-Fa-f]{4})/g, (_, hex: string) => String.fromCodePoint(Number.parseInt(hex, 16)))
    .replace(/\\x\{([0-9A-Fa-f]+)\}/g, (_, hex: string) => String.fromCodePoint(Number.parseInt(hex, 16)));

const value = (column: string) => (column === '""' ? '' : unescapeCodePoints(column));
const statuses = (column: string) =>
  column
    .replace(/^\[|\]$/g, '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** Reads IdnaTestV2.txt by its header's rules: a blank column takes the value of the one it defaults to. */
export function readIdnaTestV2(path: string): IdnaVector[] {
  const vectors: IdnaVector[] = [];
  for (const [index, raw] of readFileSync(path, 'utf8').split('\n').entries()) {
    const text = raw.replace(/#.*$/, '');
    if (text.trim() === '') continue;
    const [source, toUnicode, toUnicodeStatus, toAsciiN, toAsciiNStatus] = text
      .split(';')
      .map((column) => column.trim());
    const src = value(source!);
    const unicode = toUnicode === '' ? src : value(toUnicode!);
    vectors.push({
      line: index + 1,
      source: src,
      ascii: toAsciiN === '' ? unicode : value(toAsciiN!),
      errors: statuses(toAsciiNStatus === '' ? toUnicodeStatus! : toAsciiNStatus!),
    });
  }
  return vectors;
}
