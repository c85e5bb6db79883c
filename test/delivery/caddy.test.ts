import { waitFor } from '@certq/testing';
import { startCaddy } from '@certq/testing/servers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handshake, presented, type Stack, startStack, uniqueName } from './stack';

let stack: Stack;
let caddy: Awaited<ReturnType<typeof startCaddy>>;
const a = uniqueName('caddy-a');
const b = uniqueName('caddy-b');
let certA: { id: string; fingerprint: string };
let certB: { id: string; fingerprint: string };
let tenantA: { id: string; token: string };

beforeAll(async () => {
  stack = await startStack();
  tenantA = await stack.createTenant();
  const tenantB = await stack.createTenant();
  [certA, certB] = await Promise.all([
    stack.issue(tenantA.token, [a]),
    stack.issue(tenantB.token, [`*.${b}`, b]),
  ]);
  const token = await stack.edgeToken();
  caddy = await startCaddy({ certificateUrl: `${stack.apiUrl}/v1/tls/certificate?token=${token}` });
});
afterAll(async () => {
  await caddy?.stop();
  await stack?.close();
});

describe('Caddy with get_certificate http pointing at certq', () => {
  it('presents each tenant’s certificate for its names, verified against the simulator root only', async () => {
    // One-label wildcard: www.<b> is covered by *.<b>.
    expect(await presented(caddy.port, stack.rootPem, [a, b, `www.${b}`])).toEqual({
      [a]: certA.fingerprint,
      [b]: certB.fingerprint,
      [`www.${b}`]: certB.fingerprint,
    });
  });

  it('completes no handshake for a name certq holds no certificate for', async () => {
    const result = await handshake(caddy.port, uniqueName('unknown'), stack.rootPem);
    expect(result.ok).toBe(false);
    // Two labels under a wildcard are not covered.
    expect((await handshake(caddy.port, `x.y.${b}`, stack.rootPem)).ok).toBe(false);
  });

  it('presents the renewed certificate on new handshakes after a renewal (and says how soon)', async () => {
    const renewed = await stack.issue(tenantA.token, [a]);
    expect(renewed.fingerprint).not.toBe(certA.fingerprint);
    const issuedAt = Date.now();
    await waitFor(
      async () => {
        const r = await handshake(caddy.port, a, stack.rootPem);
        return r.ok && r.fingerprint === renewed.fingerprint;
      },
      { timeoutMs: 20_000, intervalMs: 25, message: 'caddy to present the renewed certificate' },
    );
    // Caddy 2.6 asks its get_certificate manager on every handshake (no caching of manager
    // certificates), so the delay is certq's own: the feed invalidating the API's cache.
    const delay = Date.now() - issuedAt;
    console.log(`caddy presented the renewed certificate ${delay} ms after the order was seen issued`);
    expect(delay).toBeLessThan(5_000);
  });
});
