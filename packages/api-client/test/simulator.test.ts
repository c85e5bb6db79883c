import { createSimulator, type Simulator } from '@certq/simulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkIssuedCertificate, HttpsokClient, HttpsokError, leafFingerprint } from '../src/index';

// End to end over real HTTP against the local httpsok simulator (apps/simulator).
describe('against @certq/simulator', () => {
  const GOOD_KEY = 'sim-good-key-1234';
  let clock = Date.now();
  let sim: Simulator;
  let client: HttpsokClient;

  beforeAll(async () => {
    // issueSeconds 0 issues at once; the injected clock lets us honour the 10 s poll floor without waiting.
    sim = createSimulator({ apiKeys: [GOOD_KEY], issueSeconds: 0, now: () => clock });
    const baseUrl = await sim.listen();
    client = new HttpsokClient({ apiKey: GOOD_KEY, baseUrl });
  });

  afterAll(async () => {
    await client?.close();
    await sim?.close();
  });

  it('verifies, applies and fetches an ECC certificate that passes every check', async () => {
    const domains = ['*.certq-e2e.example', 'certq-e2e.example'];
    const verified = await client.verify(domains);
    expect(verified.valid).toBe(true);
    expect(verified.configs.map((c) => c.domain)).toEqual(domains);
    expect(verified.configs[0]?.host).toBe('_acme-challenge');

    const { applyId } = await client.apply({ domainList: domains, algorithm: 'ECC', ca: 'google' });
    expect(applyId).toMatch(/^\d+$/);

    clock += 10_001;
    const app = await client.getApply(applyId);
    if (app.status !== 'issued') throw new Error(`expected issued, got ${app.status}`);
    expect(app).toMatchObject({ id: applyId, domains, algorithm: 'ECC', ca: 'google', progress: 100 });
    expect(app.privateKey).toContain('-----BEGIN EC PRIVATE KEY-----');

    const check = checkIssuedCertificate({
      certificate: app.certificate,
      privateKey: app.privateKey,
      domains,
    });
    if (!check.ok) throw new Error(check.reason);
    expect(app.fingerprints).toBe(check.fingerprint);
    expect(leafFingerprint(app.certificate)).toBe(check.fingerprint);
    // The simulator writes dates in UTC+8, as we assume the real upstream does.
    expect(app.notBefore.getTime()).toBe(Math.floor(check.notBefore.getTime() / 1000) * 1000);
    expect(app.notAfter.getTime()).toBe(Math.floor(check.notAfter.getTime() / 1000) * 1000);
  });

  it('maps a second poll within 10 s to a rate-limited error', async () => {
    const { applyId } = await client.apply({ domainList: ['poll.certq-e2e.example'] });
    clock += 10_001;
    await client.getApply(applyId);
    const error = await client.getApply(applyId).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpsokError);
    expect(error).toMatchObject({ kind: 'upstream', code: 429, rateLimited: true, retryable: true });
  });

  it('maps a bad key to authFailed', async () => {
    const stranger = client.withApiKey('sim-wrong-key-9876');
    const error = await stranger.verify(['a.certq-e2e.example']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpsokError);
    expect(error).toMatchObject({ kind: 'upstream', code: 401, authFailed: true, retryable: false });
    expect(JSON.stringify(error)).not.toContain('sim-wrong-key-9876');
  });
});
