import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecretBox, parseEncryptionKey } from '@certq/core';
import { type CertificateAuthority, createCertificateAuthority } from '@certq/simulator';
import { waitFor } from '@certq/testing';
import { startHaproxy } from '@certq/testing/servers';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AgentProcess,
  agentArgs,
  presented,
  type Stack,
  spawnAgent,
  startStack,
  uniqueName,
} from './stack';

// HAProxy 2.6 takes renewals and new names at run time: the same process serves them, no reload.
let stack: Stack;
let haproxy: Awaited<ReturnType<typeof startHaproxy>>;
let agent: AgentProcess;
let token: string;
let tenant: { id: string; token: string };
const tmp = mkdtempSync(join(tmpdir(), 'certq-haproxy-runtime-'));
const dir = join(tmp, 'certs');
const a = uniqueName('rt-a');
const fleet = Array.from({ length: 100 }, (_, i) => uniqueName(`rt-fleet${i}`));
const certs: Record<string, { id: string; fingerprint: string }> = {};
let fleetCa: CertificateAuthority;
let fleetFingerprints: Record<string, string> = {};

/** One Runtime API command, as an operator would send it with socat. */
function runtime(command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(haproxy.runtimeSocket);
    let answer = '';
    socket.on('data', (c: Buffer) => {
      answer += c;
    });
    socket.once('error', reject);
    socket.once('close', () => resolve(answer));
    socket.write(`${command}\n`);
  });
}
const workerPid = async () => /^Pid: (\d+)$/m.exec(await runtime('show info'))![1];

const startAgent = () =>
  spawnAgent([
    ...agentArgs(stack, token, dir),
    '--format',
    'haproxy',
    '--runtime-api',
    haproxy.runtimeSocket,
    '--wait',
    '10',
    '--debounce-ms',
    '100',
  ]);

/**
 * The fleet's certificates, written the way issuance writes them (an issued order, the old certificate
 * no longer current, the new one current: the feed's trigger sees each), signed by a CA of the test's
 * own: 100 issuances through the worker would take the test's time, and the agent's part is the same.
 */
async function issueFleet(): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: stack.config.DATABASE_URL });
  await client.connect();
  const box = createSecretBox(parseEncryptionKey(stack.config.ENCRYPTION_KEY!));
  const fingerprints: Record<string, string> = {};
  try {
    const issued = await Promise.all(
      fleet.map((d) => fleetCa.issue({ domains: [d], algorithm: 'ECC', issuedAt: Date.now() })),
    );
    await client.query('begin');
    for (const [i, domain] of fleet.entries()) {
      const cert = issued[i]!;
      const order = await client.query(
        `insert into orders (tenant_id, kind, domains, domains_key, status, progress, apply_id)
         values ($1, 'renewal', array[$2], $2, 'issued', 100, gen_random_uuid()::text) returning id`,
        [tenant.id, domain],
      );
      await client.query(
        'update certificates set is_current = false where tenant_id = $1 and domains_key = $2 and is_current',
        [tenant.id, domain],
      );
      await client.query(
        `insert into certificates (tenant_id, order_id, domains, domains_key, apply_id, algorithm, ca,
           not_before, not_after, fingerprint, certificate_pem, private_key_sealed, is_current)
         values ($1, $2::uuid, array[$3], $3, 'test-' || $2::text, 'ECC', 'google', $4, $5, $6, $7, $8, true)`,
        [
          tenant.id,
          order.rows[0].id,
          domain,
          cert.notBefore,
          cert.notAfter,
          cert.fingerprints,
          cert.certificate,
          box.seal(cert.privateKey),
        ],
      );
      await client.query(
        `insert into domain_claims (name, parent, tenant_id) values ($1, $2, $3) on conflict do nothing`,
        [domain, domain.slice(domain.indexOf('.') + 1), tenant.id],
      );
      fingerprints[domain] = cert.fingerprints;
    }
    await client.query('commit');
  } finally {
    await client.end();
  }
  return fingerprints;
}

beforeAll(async () => {
  fleetCa = await createCertificateAuthority();
  stack = await startStack();
  tenant = await stack.createTenant();
  certs.a = await stack.issue(tenant.token, [a, `www.${a}`]);
  token = await stack.edgeToken();
  const once = spawnAgent([...agentArgs(stack, token, dir), '--format', 'haproxy', '--once']);
  expect(await once.exited, once.output()).toBe(0);
  haproxy = await startHaproxy({ certDir: dir, runtimeApi: true });
  agent = startAgent();
  await waitFor(() => agent.output().includes('Runtime API at'), { message: agent.output() });
});
afterAll(async () => {
  agent?.child.kill('SIGKILL');
  await haproxy?.stop();
  await stack?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('certq-agent --format haproxy --runtime-api', () => {
  it('a renewal and a brand-new name are presented by the same HAProxy process, without a reload', async () => {
    const [masterPid, pid] = [haproxy.pid(), await workerPid()];
    const renewed = await stack.issue(tenant.token, [a, `www.${a}`]);
    const c = uniqueName('rt-new');
    certs.c = await stack.issue(tenant.token, [`*.${c}`]);
    await waitFor(
      async () => {
        const now = await presented(haproxy.port, stack.rootPem, [a, `www.${a}`, `shop.${c}`]);
        return (
          now[a] === renewed.fingerprint &&
          now[`www.${a}`] === renewed.fingerprint &&
          now[`shop.${c}`] === certs.c!.fingerprint
        );
      },
      { timeoutMs: 30_000, intervalMs: 100, message: `HAProxy to serve both:\n${agent.output()}` },
    );
    certs.a = renewed;
    expect(haproxy.pid()).toBe(masterPid);
    expect(await workerPid()).toBe(pid);
    expect(agent.output()).not.toContain('reloaded');
    expect(agent.output()).toMatch(/HAProxy Runtime API: \d+ added, \d+ renewed/);
  });

  it('applies 100 renewals in one batch, still without a reload', async () => {
    const issued = await issueFleet();
    await waitFor(
      async () =>
        JSON.stringify(await presented(haproxy.port, fleetCa.rootPem, fleet)) === JSON.stringify(issued),
      { timeoutMs: 30_000, intervalMs: 200, message: 'the fleet served' },
    ).catch((error) => {
      throw new Error(`${error.message}\n${agent.output()}`);
    });
    // The agent away while the renewals land, so that they come back to it as one batch.
    agent.child.kill('SIGTERM');
    await agent.exited;
    const renewed = await issueFleet();
    const pid = await workerPid();
    const restarted = Date.now();
    agent = startAgent();
    await waitFor(() => /HAProxy Runtime API: 0 added, 100 renewed, 0 removed/.test(agent.output()), {
      timeoutMs: 60_000,
      message: 'one batch of 100 renewals',
    }).catch((error) => {
      throw new Error(`${error.message}\n${agent.output()}`);
    });
    console.log(`100 renewals by Runtime API, agent start to applied: ${Date.now() - restarted} ms`);
    expect(await presented(haproxy.port, fleetCa.rootPem, fleet)).toEqual(renewed);
    expect(await workerPid()).toBe(pid);
    expect(agent.output()).not.toContain('reloaded');
    fleetFingerprints = renewed;
  });

  it('a restarted HAProxy presents the same certificates, from the files', async () => {
    agent.child.kill('SIGTERM');
    await agent.exited;
    await haproxy.stop();
    haproxy = await startHaproxy({ certDir: dir, runtimeApi: true });
    expect(await presented(haproxy.port, stack.rootPem, [a, `www.${a}`])).toEqual({
      [a]: certs.a!.fingerprint, // the renewal of the first test
      [`www.${a}`]: certs.a!.fingerprint,
    });
    expect(await presented(haproxy.port, fleetCa.rootPem, fleet)).toEqual(fleetFingerprints);
  });

  it('removes a name whose certificate is gone: del ssl crt-list + del ssl cert, files and crt-list in step', async () => {
    agent = startAgent();
    await waitFor(() => agent.output().includes('HAProxy Runtime API:'), {
      message: 'the agent’s first pass',
    });
    const pid = await workerPid();
    // The same domain set with another first domain: its files become www.<a>.pem, <a>.pem goes.
    const moved = await stack.issue(tenant.token, [`www.${a}`, a]);
    await waitFor(async () => /1 added, 0 renewed, 1 removed/.test(agent.output()), {
      timeoutMs: 30_000,
      message: 'the removal',
    }).catch((error) => {
      throw new Error(`${error.message}\n${agent.output()}`);
    });
    expect(await presented(haproxy.port, stack.rootPem, [a, `www.${a}`])).toEqual({
      [a]: moved.fingerprint,
      [`www.${a}`]: moved.fingerprint,
    });
    const oldFile = join(dir, `${a}.pem`);
    expect(await runtime('show ssl cert')).not.toContain(`${oldFile}\n`);
    expect(await runtime(`show ssl crt-list ${join(dir, 'crt-list.txt')}`)).not.toContain(`${oldFile} `);
    expect(existsSync(oldFile)).toBe(false);
    expect(readFileSync(join(dir, 'crt-list.txt'), 'utf8')).not.toContain(`${oldFile} `);
    expect(await workerPid()).toBe(pid);
  });
});
