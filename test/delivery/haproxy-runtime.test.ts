import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@certq/testing';
import { startHaproxy } from '@certq/testing/servers';
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

/** Every current certificate, by its first domain. */
async function currentByDomain(): Promise<Record<string, { id: string; fingerprint: string }>> {
  const found: Record<string, { id: string; fingerprint: string }> = {};
  let cursor: string | null = null;
  do {
    const res = await stack.admin('GET', `/v1/certificates?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
    for (const c of res.body.certificates as { id: string; fingerprint: string; domains: string[] }[])
      found[c.domains[0]!] = { id: c.id, fingerprint: c.fingerprint };
    cursor = res.body.nextCursor;
  } while (cursor);
  return found;
}

async function issueFleet(kind: 'orders' | 'renewals'): Promise<void> {
  const before = await currentByDomain();
  const res =
    kind === 'orders'
      ? await stack.request(tenant.token, 'POST', '/v1/orders/bulk', {
          orders: fleet.map((d) => ({ domains: [d] })),
        })
      : await stack.request(tenant.token, 'POST', '/v1/renewals', { domains: fleet });
  expect(res.status, res.text).toBe(202);
  const started = Date.now();
  await waitFor(
    async () => {
      const now = await currentByDomain();
      return fleet.every((d) => now[d] && now[d]!.id !== before[d]?.id);
    },
    { timeoutMs: 60_000, intervalMs: 250, message: `the fleet's ${kind}` },
  );
  console.log(`fleet ${kind}: ${Date.now() - started} ms`);
}

beforeAll(async () => {
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

  it('applies 100 renewals in one batch, still without a reload', { timeout: 150_000 }, async () => {
    await issueFleet('orders');
    const issued = await currentByDomain();
    const expected = Object.fromEntries(fleet.map((d) => [d, issued[d]!.fingerprint]));
    await waitFor(
      async () =>
        JSON.stringify(await presented(haproxy.port, stack.rootPem, fleet)) === JSON.stringify(expected),
      { timeoutMs: 30_000, intervalMs: 200, message: 'the fleet served' },
    ).catch((error) => {
      throw new Error(`${error.message}\n${agent.output()}`);
    });

    // The agent away while the renewals land, so that they come back to it as one batch.
    agent.child.kill('SIGTERM');
    await agent.exited;
    await issueFleet('renewals');
    const renewed = await currentByDomain();
    const pid = await workerPid();
    agent = startAgent();
    const restarted = Date.now();
    await waitFor(() => /HAProxy Runtime API: 0 added, 100 renewed, 0 removed/.test(agent.output()), {
      timeoutMs: 60_000,
      message: 'one batch of 100 renewals',
    }).catch((error) => {
      throw new Error(`${error.message}\n${agent.output()}`);
    });
    console.log(`100 renewals by Runtime API, agent start to applied: ${Date.now() - restarted} ms`);
    const seen = await presented(haproxy.port, stack.rootPem, fleet);
    expect(seen).toEqual(Object.fromEntries(fleet.map((d) => [d, renewed[d]!.fingerprint])));
    expect(await workerPid()).toBe(pid);
    expect(agent.output()).not.toContain('reloaded');
    for (const d of fleet) certs[d] = renewed[d]!;
  });

  it('a restarted HAProxy presents the same certificates, from the files', async () => {
    agent.child.kill('SIGTERM');
    await agent.exited;
    await haproxy.stop();
    haproxy = await startHaproxy({ certDir: dir, runtimeApi: true });
    const current = await currentByDomain();
    const names = [a, `www.${a}`, ...fleet];
    const seen = await presented(haproxy.port, stack.rootPem, names);
    expect(seen).toEqual(
      Object.fromEntries(names.map((d) => [d, current[d.replace(/^www\./, '')]!.fingerprint])),
    );
    expect(current[a]!.fingerprint).toBe(certs.a!.fingerprint); // the renewal of the first test
    expect(current[fleet[0]!]!.fingerprint).toBe(certs[fleet[0]!]!.fingerprint); // and of the batch
  });
});
