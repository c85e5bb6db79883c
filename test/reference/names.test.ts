import { readFileSync } from 'node:fs';
import { normalizeDomain } from '@certq/core';
import { describe, expect, it } from 'vitest';
import { NAME_DIFFERENCES, type NameCase } from './deliberate-differences';
import { readIdnaTestV2 } from './idna';
import { judge } from './judge';

const here = new URL('.', import.meta.url).pathname;

const agrees = (c: NameCase) =>
  c.expected === null ? !c.certq.ok : c.certq.ok && c.certq.domain === c.expected;

describe('domain names against the reference suites', () => {
  it('agrees with Unicode IdnaTestV2 17.0.0 (UTS #46 ToASCII, nontransitional) but for the listed differences', () => {
    const cases = readIdnaTestV2(`${here}unicode/IdnaTestV2.txt`).map(
      (v): NameCase => ({
        suite: 'IdnaTestV2',
        source: v.source,
        expected: v.errors.length === 0 ? v.ascii : null,
        ascii: v.ascii,
        errors: v.errors,
        certq: normalizeDomain(v.source),
        normalize: normalizeDomain,
      }),
    );
    const result = judge(cases, agrees, NAME_DIFFERENCES);
    expect(result.unexplained).toEqual([]);
    expect(result).toMatchObject({
      applied: 6391,
      agreed: 6203,
      byRule: {
        'hidden characters refused': 15,
        'single label': 140,
        'trailing dot dropped': 25,
        'the _acme-challenge record must fit': 8,
      },
    });
  });

  it('agrees with WPT url/resources/toascii.json but for the listed differences', () => {
    const vectors = JSON.parse(readFileSync(`${here}wpt/toascii.json`, 'utf8')) as (
      | string
      | { input: string; output: string | null }
    )[];
    const cases = vectors
      .filter((v) => typeof v !== 'string')
      .map(
        (v): NameCase => ({
          suite: 'toascii',
          source: v.input,
          expected: v.output,
          ascii: v.output ?? '',
          errors: v.output === null ? ['refused'] : [],
          certq: normalizeDomain(v.input),
          normalize: normalizeDomain,
        }),
      );
    const result = judge(cases, agrees, NAME_DIFFERENCES);
    expect(result.unexplained).toEqual([]);
    expect(result).toMatchObject({
      applied: 43,
      agreed: 15,
      byRule: {
        'single label': 14,
        'URL hosts skip CheckHyphens': 6,
        'URL hosts skip VerifyDnsLength': 7,
        'Bidi rule for a digit-only label': 1,
      },
    });
  });
});
