import { readFileSync } from 'node:fs';
import { normalizeDomain } from '@certq/core';
import { describe, expect, it } from 'vitest';
import { NAME_DIFFERENCES, type NameCase } from './deliberate-differences';
import { readIdnaTestV2 } from './idna';
import { judge } from './judge';

const here = new URL('.', import.meta.url).pathname;

const agrees = (c: NameCase) =>
  c.expected === null ? !c.certq.ok : c.certq.ok && c.certq.domain === c.expected;

/** One vector of a suite, with certq's verdict on its source. */
const nameCase = (
  suite: NameCase['suite'],
  source: string,
  expected: string | null,
  ascii: string,
  errors: string[],
): NameCase => ({
  suite,
  source,
  expected,
  ascii,
  errors,
  certq: normalizeDomain(source),
  normalize: normalizeDomain,
});

/** Every disagreement is one of the listed differences, and the counts are these. */
function expectJudged(cases: NameCase[], counts: Record<string, unknown>): void {
  const result = judge(cases, agrees, NAME_DIFFERENCES);
  expect(result.unexplained).toEqual([]);
  expect(result).toMatchObject(counts);
}

describe('domain names against the reference suites', () => {
  it('agrees with Unicode IdnaTestV2 17.0.0 (UTS #46 ToASCII, nontransitional) but for the listed differences', () => {
    const cases = readIdnaTestV2(`${here}unicode/IdnaTestV2.txt`).map((v) =>
      nameCase('IdnaTestV2', v.source, v.errors.length === 0 ? v.ascii : null, v.ascii, v.errors),
    );
    expectJudged(cases, {
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
      .map((v) =>
        nameCase('toascii', v.input, v.output, v.output ?? '', v.output === null ? ['refused'] : []),
      );
    expectJudged(cases, {
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
