import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ACTIVE_STATUSES,
  backoffDelay,
  ConfigError,
  canTransition,
  createSecretBox,
  domainSetKey,
  hashToken,
  loadConfig,
  normalizeDomain,
  normalizeDomainList,
  ORDER_STATUSES,
  safeEqual,
  stageJobId,
  TRANSITIONS,
} from '../src';

describe('order state machine', () => {
  it('moves forward only along the written transitions', () => {
    expect(canTransition('verifying', 'applying')).toBe(true);
    expect(canTransition('applying', 'issuing')).toBe(true);
    expect(canTransition('issuing', 'issued')).toBe(true);
    expect(canTransition('verifying', 'issued')).toBe(false);
    expect(canTransition('issued', 'verifying')).toBe(false);
    expect(canTransition('cancelled', 'verifying')).toBe(false);
    expect(canTransition('failed', 'verifying')).toBe(true);
  });
  it('lets every active order fail or be cancelled, and nothing leave issued or cancelled', () => {
    for (const status of ACTIVE_STATUSES) {
      expect(canTransition(status, 'failed')).toBe(true);
      expect(canTransition(status, 'cancelled')).toBe(true);
    }
    expect(TRANSITIONS.issued).toEqual([]);
    expect(TRANSITIONS.cancelled).toEqual([]);
    for (const s of ORDER_STATUSES) for (const t of TRANSITIONS[s]) expect(ORDER_STATUSES).toContain(t);
  });
});

describe('domains', () => {
  it.each([
    ['Example.COM', 'example.com'],
    ['example.com.', 'example.com'],
    ['  *.Example.com ', '*.example.com'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['*.münchen.de', '*.xn--mnchen-3ya.de'],
    ['a-b.c0.example.org', 'a-b.c0.example.org'],
  ])('normalises %s to %s', (input, expected) => {
    expect(normalizeDomain(input)).toEqual({ ok: true, domain: expected });
  });

  it.each([
    ['', 'empty'],
    ['localhost', 'two labels'],
    ['a.*.example.com', 'wildcard'],
    ['*example.com', 'wildcard'],
    ['**.example.com', 'wildcard'],
    ['127.0.0.1', 'IP'],
    ['::1', 'IP'],
    ['[2001:db8::1]', 'IP'],
    ['-bad.example.com', 'CheckHyphens'],
    ['bad-.example.com', 'CheckHyphens'],
    ['a.bc--de.example', 'CheckHyphens'],
    ['under_score.example.com', 'UseSTD3ASCIIRules'],
    ['example..com', 'empty label'],
    // A URL parser would cut these at `?`, `/` or decode `%6d`, and order another name.
    ['bücher.de?x', 'UseSTD3ASCIIRules'],
    ['ü.exa%6dple.com', 'UseSTD3ASCIIRules'],
    ['ü-x.attacker.example/victim.example', 'UseSTD3ASCIIRules'],
    ['ü.example\\victim.example', 'UseSTD3ASCIIRules'],
    // Punycode labels are decoded and validated.
    ['xn--a.pt', 'Punycode'],
    ['xn--0.pt', 'Punycode'],
    ['xn--ab-m1t.example', 'CheckJoiners'],
    ['0à.\u05D0', 'CheckBidi'],
    ['a\u200Cb.example', 'CheckJoiners'],
    ['a\u00ADb.example', 'U+00AD'],
    ['a\uFE0Fb.example', 'U+FE0F'],
    ['co.uk', 'public suffix'],
    ['*.co.uk', 'a wildcard directly under the public suffix co.uk'],
    ['kawasaki.jp', 'public suffix'],
    ['act.edu.au', 'public suffix'],
    ['*.com', 'two labels'],
    ['１.２.３.４', 'IP'],
    [`${'a'.repeat(64)}.example.com`, '63'],
    [`${'a.'.repeat(127)}com`, '237'],
    ['example.123', 'numeric'],
  ])('rejects %j (%s)', (input, reason) => {
    const result = normalizeDomain(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toContain(reason);
  });

  it('accepts 237 characters and a 63-character label, not 238: the _acme-challenge record must fit in 253', () => {
    const label = 'a'.repeat(63);
    const name = `${label}.${label}.${label}.${'b'.repeat(45)}`;
    expect(name.length).toBe(237);
    expect(normalizeDomain(name).ok).toBe(true);
    expect(normalizeDomain(`*.${name}`).ok).toBe(true);
    const result = normalizeDomain(`c.${name}`);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toContain('_acme-challenge');
  });

  it.each([
    // UTS #46 folds a final capital sigma to σ; JavaScript's toLowerCase gives ς, another name.
    ['ΒΌΛΟΣ.com', 'xn--nxasmq6b.com'],
    ['βόλος.com', 'xn--nxasmm1c.com'],
    ['Faß.de', 'xn--fa-hia.de'],
    // Zero-width (non-)joiners where CONTEXTJ allows them: Persian and Indic names.
    ['\u0646\u0627\u0645\u0647\u200C\u0627\u06CC.com', 'xn--mgba3gch31f060k.com'],
    ['a\u094D\u200Cb.example', 'xn--ab-fsf604u.example'],
    ['www.\u0DC1\u0DCA\u200D\u0DBB\u0DD3.com', 'www.xn--10cl1a0b660p.com'],
    ['xn--bcher-kva.de', 'xn--bcher-kva.de'],
    ['example.com\u3002', 'example.com'],
    ['example.co.uk', 'example.co.uk'],
    ['*.example.co.uk', '*.example.co.uk'],
  ])('maps %s to %s by UTS #46', (input, expected) => {
    expect(normalizeDomain(input)).toEqual({ ok: true, domain: expected });
  });

  it('dedupes after normalisation and bounds the list to 1–100', () => {
    expect(normalizeDomainList(['A.com', 'a.com.', 'b.com'])).toEqual({
      ok: true,
      domains: ['a.com', 'b.com'],
    });
    expect(normalizeDomainList([])).toMatchObject({ ok: false });
    const many = Array.from({ length: 101 }, (_, i) => `d${i}.example.com`);
    expect(normalizeDomainList(many)).toMatchObject({ ok: false });
    expect(normalizeDomainList(many.slice(0, 100)).ok).toBe(true);
    expect(normalizeDomainList(['ok.com', '1.2.3.4'])).toMatchObject({ ok: false, index: 1 });
  });

  it('keys a domain set independently of order', () => {
    expect(domainSetKey(['b.com', 'a.com'])).toBe(domainSetKey(['a.com', 'b.com']));
  });
});

describe('secrets at rest', () => {
  const keyA = randomBytes(32);
  const keyB = randomBytes(32);
  it('round-trips, names its key, and never contains the plaintext', () => {
    const box = createSecretBox(keyA);
    const sealed = box.seal('sk-very-secret');
    expect(sealed).not.toContain('sk-very-secret');
    expect(sealed.split('.')[1]).toBe(box.activeKeyId);
    expect(box.open(sealed)).toBe('sk-very-secret');
    expect(box.seal('x')).not.toBe(box.seal('x'));
  });
  it('reads secrets sealed with a previous key after rotation', () => {
    const old = createSecretBox(keyA).seal('before rotation');
    const rotated = createSecretBox(keyB, [keyA]);
    expect(rotated.open(old)).toBe('before rotation');
    expect(rotated.seal('after').split('.')[1]).toBe(rotated.activeKeyId);
    expect(() => createSecretBox(keyB).open(old)).toThrow(/unknown key/);
  });
  it('detects tampering', () => {
    const box = createSecretBox(keyA);
    const parts = box.seal('hello').split('.');
    parts[4] = Buffer.from('hellx').toString('base64url');
    expect(() => box.open(parts.join('.'))).toThrow();
  });
  it('hashes tokens and compares in constant time', () => {
    expect(hashToken('a')).toHaveLength(64);
    expect(safeEqual(hashToken('a'), hashToken('a'))).toBe(true);
    expect(safeEqual(hashToken('a'), hashToken('b'))).toBe(false);
    expect(safeEqual('a', 'ab')).toBe(false);
  });
});

describe('backoff', () => {
  const policy = { baseMs: 10_000, capMs: 15 * 60_000 };
  it('never goes under the floor, grows, and stops at the cap', () => {
    expect(backoffDelay(0, policy, () => 0)).toBe(10_000);
    expect(backoffDelay(3, policy, () => 0)).toBe(40_000);
    expect(backoffDelay(3, policy, () => 1)).toBe(80_000);
    expect(backoffDelay(30, policy, () => 1)).toBe(15 * 60_000);
    for (let i = 0; i < 1000; i++) expect(backoffDelay(i % 20, policy)).toBeGreaterThanOrEqual(10_000);
  });
});

describe('configuration', () => {
  it('applies defaults', () => {
    const config = loadConfig({});
    expect(config.PORT).toBe(3000);
    expect(config.POLL_INTERVAL_MS).toBe(10_000);
    expect(config.RENEW_BEFORE_DAYS).toBeUndefined();
    expect(config.UPSTREAM_MAX_RPS).toBe(20);
    expect(config.HTTPSOK_BASE_URL).toBe('https://openapi.httpsok.com');
  });
  it('names the variable of a bad value', () => {
    expect(() => loadConfig({ POLL_INTERVAL_MS: '5000' })).toThrow(/POLL_INTERVAL_MS must be at least 10000/);
    expect(() => loadConfig({ PORT: 'abc' })).toThrow(/PORT/);
    expect(() => loadConfig({ ENCRYPTION_KEY: 'short' })).toThrow(/ENCRYPTION_KEY/);
    expect(() => loadConfig({}, { requireSecrets: true })).toThrow(ConfigError);
    expect(() => loadConfig({}, { requireSecrets: true })).toThrow(/ADMIN_TOKEN is required/);
  });
});

describe('job ids', () => {
  it('are deterministic, free of ":" and never all digits', () => {
    const id = stageJobId('poll', '7b0c6a8e-0000-4000-8000-000000000000', 2);
    expect(id).toBe(stageJobId('poll', '7b0c6a8e-0000-4000-8000-000000000000', 2));
    expect(id).not.toContain(':');
    expect(/^\d+$/.test(id)).toBe(false);
  });
});
