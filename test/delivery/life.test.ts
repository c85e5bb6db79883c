import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CertificateAuthority, createCertificateAuthority } from '@certq/simulator';
import { selfSigned, waitFor } from '@certq/testing';
import { startCaddy, startHaproxy, startNginx } from '@certq/testing/servers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AgentProcess,
  agentArgs,
  handshake,
  presented,
  type Stack,
  spawnAgent,
  spawnNginxAgent,
  startStack,
  uniqueName,
} from './stack';

/**
 * A certificate's end of life as the TLS servers see it: Caddy asking certq's TLS route at each
 * handshake, nginx fed by a running certq-agent, HAProxy fed by `certq-agent --once` at the end.
 * Retired → no longer presented, its files gone, nothing else touched; uploaded → presented;
 * tenant deleted → none of its names, its token refused, another tenant untouched; bad uploads → 400
 * and nothing stored.
 */
let stack: Stack;
let caddy: Awaited<ReturnType<typeof startCaddy>>;
let nginx: Awaited<ReturnType<typeof startNginx>>;
let agent: AgentProcess;
let edge: string;
let own: CertificateAuthority;
let tenantA: { id: string; token: string };
let tenantB: { id: string; token: string };
let doomed: { id: string; token: string };
const tmp = mkdtempSync(join(tmpdir(), 'certq-life-test-'));
const dir = join(tmp, 'nginx');
const names = {
  retired: uniqueName('life-retired'),
  kept: uniqueName('life-kept'),
  other: uniqueName('life-other'),
  doomed: uniqueName('life-doomed'),
  uploaded: uniqueName('life-uploaded'),
  switched: uniqueName('life-switched'),
};
const certs: Record<string, { id: string; fingerprint: string }> = {};

/** The nginx agent's directory name for a certificate's first domain. */
const filesOf = (name: string) => join(dir, name, 'fullchain.pem');

beforeAll(async () => {
  stack = await startStack();
  [tenantA, tenantB, doomed] = [
    await stack.createTenant(),
    await stack.createTenant(),
    await stack.createTenant(),
  ];
  [certs.retired, certs.kept, certs.other, certs.doomed] = await Promise.all([
    stack.issue(tenantA.token, [names.retired]),
    stack.issue(tenantA.token, [names.kept]),
    stack.issue(tenantB.token, [names.other]),
    stack.issue(doomed.token, [names.doomed]),
  ]);
  own = await createCertificateAuthority();
  edge = await stack.edgeToken();
  mkdirSync(join(dir, 'hand-made'), { recursive: true });
  writeFileSync(join(dir, 'hand-made', 'fullchain.pem'), 'not ours');
  const once = spawnAgent([...agentArgs(stack, edge, dir), '--once']);
  expect(await once.exited, once.output()).toBe(0);
  [caddy, nginx] = await Promise.all([
    startCaddy({ certificateUrl: `${stack.apiUrl}/v1/tls/certificate?token=${edge}` }),
    startNginx({ certDir: dir }),
  ]);
  agent = spawnNginxAgent(stack, edge, dir, nginx.reloadCommand, 100);
});
afterAll(async () => {
  agent?.child.kill('SIGKILL');
  await caddy?.stop();
  await nginx?.stop();
  await stack?.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function countCertificates(): Promise<number> {
  const res = await stack.admin('GET', '/v1/certificates?includeHistory=true&limit=100');
  return res.body.certificates.length;
}

describe('the end of a certificate’s life on real TLS servers', () => {
  it('an uploaded certificate is presented like an issued one, and never renewed', async () => {
    const issued = await own.issue({ domains: [names.uploaded], algorithm: 'ECC', issuedAt: Date.now() });
    const res = await stack.request(tenantA.token, 'POST', '/v1/certificates', {
      certificate: issued.certificate,
      privateKey: issued.privateKey,
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ status: 'uploaded', uploaded: true, orderId: null, ca: null });
    expect(res.text).not.toContain('PRIVATE KEY');
    certs.uploaded = { id: res.body.id, fingerprint: issued.fingerprints };
    await waitFor(() => existsSync(filesOf(names.uploaded)), {
      timeoutMs: 20_000,
      message: `the agent to write the uploaded certificate:\n${agent.output()}`,
    });
    expect(await presented(caddy.port, own.rootPem, [names.uploaded])).toEqual({
      [names.uploaded]: issued.fingerprints,
    });
    // A new name reaches nginx with the agent's reload (its name map).
    await waitFor(
      async () => {
        const r = await handshake(nginx.port, names.uploaded, own.rootPem);
        return r.ok && r.fingerprint === issued.fingerprints;
      },
      { timeoutMs: 20_000, intervalMs: 100, message: `nginx to present the upload:\n${agent.output()}` },
    );
    const renew = await stack.request(tenantA.token, 'POST', '/v1/renewals', { domains: [names.uploaded] });
    expect(renew.body).toMatchObject({ enqueued: 0 });
  });

  it('an order for an uploaded certificate’s domains replaces it once issued', async () => {
    const mine = await own.issue({ domains: [names.switched], algorithm: 'RSA', issuedAt: Date.now() });
    const up = await stack.request(tenantB.token, 'POST', '/v1/certificates', {
      certificate: mine.certificate,
      privateKey: mine.privateKey,
    });
    expect(up.status, up.text).toBe(201);
    expect(up.body.algorithm).toBe('RSA');
    const managed = await stack.issue(tenantB.token, [names.switched]);
    const old = await stack.request(tenantB.token, 'GET', `/v1/certificates/${up.body.id}`);
    expect(old.body).toMatchObject({ status: 'retired', isCurrent: false });
    const fresh = await stack.request(tenantB.token, 'GET', `/v1/certificates/${managed.id}`);
    expect(fresh.body).toMatchObject({ status: 'active', uploaded: false });
    await waitFor(
      async () => {
        const r = await handshake(caddy.port, names.switched, stack.rootPem);
        return r.ok && r.fingerprint === managed.fingerprint;
      },
      { timeoutMs: 10_000, intervalMs: 50, message: 'Caddy to present the managed certificate' },
    );
  });

  it('a retired certificate stops being presented and its files are gone, nothing else touched', async () => {
    const res = await stack.request(tenantA.token, 'DELETE', `/v1/certificates/${certs.retired!.id}`);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('retired');
    await waitFor(() => !existsSync(join(dir, names.retired)), {
      timeoutMs: 20_000,
      message: `the agent to delete the retired files:\n${agent.output()}`,
    });
    expect((await handshake(caddy.port, names.retired, stack.rootPem)).ok).toBe(false);
    await waitFor(async () => !(await handshake(nginx.port, names.retired, stack.rootPem)).ok, {
      timeoutMs: 10_000,
      message: 'nginx to stop presenting the retired certificate',
    });
    expect(await presented(caddy.port, stack.rootPem, [names.kept, names.other])).toEqual({
      [names.kept]: certs.kept!.fingerprint,
      [names.other]: certs.other!.fingerprint,
    });
    expect(await presented(nginx.port, stack.rootPem, [names.kept, names.other])).toEqual({
      [names.kept]: certs.kept!.fingerprint,
      [names.other]: certs.other!.fingerprint,
    });
    expect(readFileSync(join(dir, 'hand-made', 'fullchain.pem'), 'utf8')).toBe('not ours');
    const tls = await stack.request(edge, 'GET', `/v1/tls/certificate?server_name=${names.retired}`);
    expect(tls.status).toBe(204);
  });

  it('a deleted tenant: none of its names presented, its token refused, another tenant untouched', async () => {
    const res = await stack.admin('DELETE', `/v1/tenants/${doomed.id}`);
    expect(res.status).toBe(200);
    expect(res.body.affected).toMatchObject({ certificatesRetired: 1 });
    await waitFor(() => !existsSync(join(dir, names.doomed)), {
      timeoutMs: 20_000,
      message: `the agent to delete the deleted tenant's files:\n${agent.output()}`,
    });
    expect((await handshake(caddy.port, names.doomed, stack.rootPem)).ok).toBe(false);
    expect((await stack.request(doomed.token, 'GET', '/v1/orders')).status).toBe(401);
    expect((await stack.request(tenantB.token, 'GET', '/v1/orders')).status).toBe(200);
    expect(await presented(caddy.port, stack.rootPem, [names.other])).toEqual({
      [names.other]: certs.other!.fingerprint,
    });
  });

  it('HAProxy, fed afterwards, presents the uploaded and kept ones and none of the ended ones', async () => {
    const hapDir = join(tmp, 'haproxy');
    const once = spawnAgent([...agentArgs(stack, edge, hapDir), '--format', 'haproxy', '--once']);
    expect(await once.exited, once.output()).toBe(0);
    expect(existsSync(join(hapDir, `${names.retired}.pem`))).toBe(false);
    expect(existsSync(join(hapDir, `${names.doomed}.pem`))).toBe(false);
    const haproxy = await startHaproxy({ certDir: hapDir });
    try {
      expect(await presented(haproxy.port, own.rootPem, [names.uploaded])).toEqual({
        [names.uploaded]: certs.uploaded!.fingerprint,
      });
      expect(await presented(haproxy.port, stack.rootPem, [names.kept])).toEqual({
        [names.kept]: certs.kept!.fingerprint,
      });
      for (const name of [names.retired, names.doomed]) {
        const result = await handshake(haproxy.port, name, stack.rootPem);
        // HAProxy falls back to its first certificate: never the ended one.
        if (result.ok)
          expect([certs.retired!.fingerprint, certs.doomed!.fingerprint]).not.toContain(result.fingerprint);
      }
    } finally {
      await haproxy.stop();
    }
  });

  it('refuses bad uploads with a 400 that says what is wrong, storing nothing', async () => {
    const before = await countCertificates();
    const good = await own.issue({
      domains: [uniqueName('life-bad')],
      algorithm: 'ECC',
      issuedAt: Date.now(),
    });
    const another = await own.issue({
      domains: [uniqueName('life-bad')],
      algorithm: 'ECC',
      issuedAt: Date.now(),
    });
    const expired = await own.issue({
      domains: [uniqueName('life-bad')],
      algorithm: 'ECC',
      issuedAt: Date.now() - 100 * 86_400_000,
    });
    const foreign = await own.issue({ domains: [names.other], algorithm: 'ECC', issuedAt: Date.now() });
    const selfSignedCa = selfSigned(uniqueName('life-ca'), { ca: true, days: 30 });
    const cases: [string, unknown, RegExp][] = [
      ['another key', { certificate: good.certificate, privateKey: another.privateKey }, /does not match/],
      ['expired', { certificate: expired.certificate, privateKey: expired.privateKey }, /expired/],
      ['self-signed CA', selfSignedCa, /CA certificate/],
      [
        'another tenant’s domain',
        { certificate: foreign.certificate, privateKey: foreign.privateKey },
        /another tenant/,
      ],
      ['garbage', { certificate: 'hello', privateKey: 'world' }, /no PEM CERTIFICATE/],
      [
        'a broken chain',
        { certificate: good.leafPem + stack.rootPem, privateKey: good.privateKey },
        /does not link/,
      ],
    ];
    for (const [what, body, message] of cases) {
      const res = await stack.request(tenantA.token, 'POST', '/v1/certificates', body);
      expect([what, res.status]).toEqual([what, 400]);
      expect(res.body.error.message, what).toMatch(message);
    }
    const huge = 'A'.repeat(10 * 1024 * 1024);
    const big = await stack.request(tenantA.token, 'POST', '/v1/certificates', {
      certificate: `-----BEGIN CERTIFICATE-----\n${huge}\n-----END CERTIFICATE-----\n`,
      privateKey: good.privateKey,
    });
    expect(big.status).toBe(413);
    expect(await countCertificates()).toBe(before);
  });
});
