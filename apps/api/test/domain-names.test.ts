import { normalizeDomain } from '@certq/core';
import { describe, expect } from 'vitest';
import { readIdnaTestV2 } from '../../../test/reference/idna';
import { it, uniqueDomain } from './helpers';

const vectors = readIdnaTestV2(
  new URL('../../../test/reference/unicode/IdnaTestV2.txt', import.meta.url).pathname,
);
/** Every 64th IdnaTestV2 vector: the API must answer what the normalizer (run on all of them) answers. */
const sample = vectors.filter((_, index) => index % 64 === 0).map((v) => v.source);

describe('POST /v1/orders orders the name UTS #46 gives, or refuses it', () => {
  it.for([
    ['bücher.de?x', null],
    ['ü.exa%6dple.com', null],
    ['ü-x.attacker.example/victim.example', null],
    ['xn--a.pt', null],
    ['a.bc--de.example', null],
    ['co.uk', null],
    ['*.co.uk', null],
    ['kawasaki.jp', null],
    ['ΒΌΛΟΣ.com', 'xn--nxasmq6b.com'],
    ['\u0646\u0627\u0645\u0647\u200C\u0627\u06CC.com', 'xn--mgba3gch31f060k.com'],
  ] as const)('%s → %s', async ([name, expected], { asA }) => {
    const other = uniqueDomain();
    const res = await asA('POST', '/v1/orders', { domains: [name, other] });
    if (expected === null) {
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    } else {
      expect(res.status).toBe(202);
      expect(res.body.domains).toEqual([expected, other]);
    }
  });

  it(`answers as normalizeDomain for a sample of ${sample.length} IdnaTestV2 vectors`, async ({ asA }) => {
    for (const name of sample) {
      const expected = normalizeDomain(name);
      const other = uniqueDomain();
      const res = await asA('POST', '/v1/orders', { domains: [name, other] });
      if (expected.ok) {
        expect({ name, status: res.status, domains: res.body.domains }).toEqual({
          name,
          status: 202,
          domains: [expected.domain, other],
        });
      } else {
        expect({ name, status: res.status, message: res.body.error.message }).toEqual({
          name,
          status: 400,
          message: expect.stringContaining(expected.reason),
        });
      }
    }
  });
});
