import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '@certq/testing';
import { startCaddy } from '@certq/testing/servers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess, Stack } from './stack';
import { agentArgs, handshake, presented, spawnAgent, startStack, uniqueName } from './stack';

// Caddy asks at every handshake; with the agent in between, certq may be down and handshakes go on.
let stack: Stack;
let caddy: Awaited<ReturnType<typeof startCaddy>>;
let agent: AgentProcess;
let agentPort: number;
const tmp = mkdtempSync(join(tmpdir(), 'certq-caddy-agent-'));
const a = uniqueName('cagent-a');
const b = uniqueName('cagent-b');
const certs: Record<string, { id: string; fingerprint: string }> = {};
let tenantB: { id: string; token: string };

beforeAll(async () => {
  stack = await startStack();
  const tenantA = await stack.createTenant();
  tenantB = await stack.createTenant();
  [certs.a, certs.b] = await Promise.all([
    stack.issue(tenantA.token, [a]),
    stack.issue(tenantB.token, [`*.${b}`, b]),
  ]);
  const token = await stack.edgeToken();
  agentPort = await freePort();
  agent = spawnAgent([
    ...agentArgs(stack, token, join(tmp, 'certs')),
    '--format',
    'caddy',
    '--listen',
    `127.0.0.1:${agentPort}`,
    '--wait',
    '10',
    '--debounce-ms',
    '50',
  ]);
  await waitFor(() => agent.output().includes('wrote '), {
    timeoutMs: 20_000,
    message: `the agent's first sync:\n${agent.output()}`,
  });
  caddy = await startCaddy({ certificateUrl: `http://127.0.0.1:${agentPort}/` });
});
afterAll(async () => {
  await caddy?.stop();
  agent?.child.kill('SIGKILL');
  await stack?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('Caddy through certq-agent --format caddy', () => {
  it('answers get_certificate http on both paths: 200 PEM bundle, 204 for an unknown name', async () => {
    for (const path of ['/', '/tls/certificate']) {
      const hit = await fetch(
        `http://127.0.0.1:${agentPort}${path}?server_name=www.${b}&signature_schemes=x`,
      );
      expect(hit.status).toBe(200);
      const pem = await hit.text();
      expect(pem.indexOf('BEGIN CERTIFICATE')).toBeLessThan(pem.indexOf('PRIVATE KEY'));
      const miss = await fetch(`http://127.0.0.1:${agentPort}${path}?server_name=x.y.${b}`);
      expect(miss.status).toBe(204);
    }
    expect((await fetch(`http://127.0.0.1:${agentPort}/?nothing=1`)).status).toBe(400);
  });

  it('serves each tenant’s names, exact and one-label wildcard', async () => {
    expect(await presented(caddy.port, stack.rootPem, [a, b, `www.${b}`])).toEqual({
      [a]: certs.a!.fingerprint,
      [b]: certs.b!.fingerprint,
      [`www.${b}`]: certs.b!.fingerprint,
    });
    expect((await handshake(caddy.port, uniqueName('unknown'), stack.rootPem)).ok).toBe(false);
  });

  it('2,000 handshakes while certq is stopped and started again: none fails; a renewal made meanwhile is served soon after', {
    timeout: 120_000,
  }, async () => {
    const replica = await stack.startReplica();
    await stack.stopApi();
    const names = [a, b, `www.${b}`, `api.${b}`];
    let done = 0;
    let duringOutage = 0;
    let down = true;
    const failures: string[] = [];
    const TOTAL = 2000;
    // Four clients, each full handshake on a new connection, paced so the run spans the outage.
    const started = Date.now();
    const clients = Array.from({ length: 4 }, async (_, client) => {
      for (let i = client; i < TOTAL; i += 4) {
        const name = names[i % names.length]!;
        const r = await handshake(caddy.port, name, stack.rootPem);
        if (!r.ok) failures.push(`${name}: ${r.error}`);
        done++;
        if (down) duringOutage++;
        const due = started + (i * 1000) / 200;
        if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      }
    });
    const renewed = await stack.issueVia(replica.url, tenantB.token, [`*.${b}`, b]);
    // Down long enough for the agent to notice and for a good part of the handshakes.
    await waitFor(() => /unreachable/.test(agent.output()) && done >= 1000, {
      timeoutMs: 60_000,
      message: `the agent to notice the outage:\n${agent.output()}`,
    });
    // certq is away: the agent goes on serving the certificate it has.
    expect(await handshake(caddy.port, b, stack.rootPem)).toEqual({
      ok: true,
      fingerprint: certs.b!.fingerprint,
    });
    const downFor = Date.now() - started;
    await stack.startApi();
    down = false;
    const back = Date.now();
    await waitFor(
      async () => {
        const r = await handshake(caddy.port, `shop.${b}`, stack.rootPem);
        return r.ok && r.fingerprint === renewed.fingerprint;
      },
      { timeoutMs: 30_000, intervalMs: 50, message: `the renewal to be served:\n${agent.output()}` },
    );
    const servedAfter = Date.now() - back;
    await Promise.all(clients);
    console.log(
      `caddy via agent: ${TOTAL} handshakes (${duringOutage} while certq was down), ${failures.length} failed, certq down ${downFor} ms; ` +
        `renewal served ${servedAfter} ms after certq returned`,
    );
    expect(failures).toEqual([]);
    expect(servedAfter).toBeLessThan(15_000);
    certs.b = renewed;
  });
});
