import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { isPublicAddress, SPECIAL_PURPOSE_REGISTRY_SNAPSHOT } from '@certq/core';
import { describe, expect, it } from 'vitest';
import { ADDRESS_DIFFERENCES, type AddressCase } from './deliberate-differences';
import { judge } from './judge';

/** RFC 4180 CSV, as IANA writes it (quoted cells may hold commas, quotes and line breaks). */
function readCsv(path: string): Record<string, string>[] {
  const text = readFileSync(path, 'utf8');
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') cell += text[++i];
      else if (char === '"') quoted = false;
      else cell += char;
    } else if (char === '"') quoted = true;
    else if (char === ',' || char === '\n') {
      row.push(cell);
      cell = '';
      if (char === '\n') {
        rows.push(row);
        row = [];
      }
    } else if (char !== '\r') cell += char;
  }
  const [header, ...body] = rows;
  return body.map((cells) => Object.fromEntries(header!.map((name, i) => [name, cells[i] ?? ''])));
}

interface Block {
  block: string;
  name: string;
  globallyReachable: string;
  family: 4 | 6;
  first: bigint;
  last: bigint;
}

const bits = (family: 4 | 6) => (family === 4 ? 32 : 128);
function toBigInt(address: string): bigint {
  if (isIP(address) === 4) return address.split('.').reduce((n, octet) => (n << 8n) | BigInt(octet), 0n);
  const [head, tail] = address.split('::') as [string, string | undefined];
  const groups = (part: string) => (part ? part.split(':') : []);
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...new Array(8 - left.length - right.length).fill('0'), ...right];
  return all.reduce((n, group) => (n << 16n) | BigInt(Number.parseInt(group, 16)), 0n);
}
function fromBigInt(value: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 255n)).join('.');
  return [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n]
    .map((shift) => ((value >> shift) & 0xffffn).toString(16))
    .join(':');
}

function blocksOf(path: string): Block[] {
  return readCsv(path).flatMap((row) =>
    row['Address Block']!.split(',').map((cell) => {
      const block = cell.replace(/\s*\[\d+\]/g, '').trim();
      const [net, length] = block.split('/') as [string, string];
      const family = isIP(net) as 4 | 6;
      const host = BigInt(bits(family) - Number(length));
      const first = toBigInt(net);
      return {
        block,
        name: row.Name!,
        // Footnote marks ("False [1]") dropped; a terminated entry has an empty cell.
        globallyReachable: row['Globally Reachable']!.replace(/\s*\[\d+\]/g, '').trim() || 'terminated',
        family,
        first,
        last: first + (1n << host) - 1n,
      };
    }),
  );
}

const here = new URL('iana/', import.meta.url).pathname;
const blocks = [
  ...blocksOf(`${here}iana-ipv4-special-registry-1.csv`),
  ...blocksOf(`${here}iana-ipv6-special-registry-1.csv`),
];

describe('webhook addresses against the IANA special-purpose registries', () => {
  it(`judges every registry block as its "Globally Reachable" column says (snapshot ${SPECIAL_PURPOSE_REGISTRY_SNAPSHOT}) but for the listed differences`, () => {
    const cases: AddressCase[] = [];
    for (const block of blocks) {
      // The block's first, middle and last address, each judged by the most specific row holding it.
      for (const value of [block.first, block.first + (block.last - block.first + 1n) / 2n, block.last]) {
        const enclosing = blocks
          .filter((b) => b.family === block.family && b.first <= value && value <= b.last)
          .sort((a, b) => Number(a.last - a.first - (b.last - b.first)));
        const address = fromBigInt(value, block.family);
        cases.push({ address, row: enclosing[0]!, enclosing, certq: isPublicAddress(address) });
      }
    }
    const result = judge(cases, (c) => (c.row.globallyReachable === 'True') === c.certq, ADDRESS_DIFFERENCES);
    expect(result.unexplained).toEqual([]);
    expect(result).toMatchObject({
      applied: 153,
      agreed: 123,
      byRule: {
        'globally reachable inside a block that is not': 27,
        'IPv4 carried in IPv6 judged by the IPv4 address': 3,
      },
    });
  });

  it('refuses the blocks the previous table let through', () => {
    for (const address of [
      '64:ff9b:1::a00:1',
      '64:ff9b:1::7f00:1',
      '3fff::1',
      '5f00::1',
      '100:0:0:1::1',
      '2002:808:808::1',
    ])
      expect({ address, allowed: isPublicAddress(address) }).toEqual({ address, allowed: false });
    for (const address of [
      '8.8.8.8',
      '2606:4700::1111',
      '64:ff9b::808:808',
      '::ffff:8.8.8.8',
      '192.31.196.1',
      '2620:4f:8000::1',
    ])
      expect({ address, allowed: isPublicAddress(address) }).toEqual({ address, allowed: true });
  });
});
