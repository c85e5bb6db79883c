import { createPrivateKey, X509Certificate } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@certq/testing';
import { startNginx } from '@certq/testing/servers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess, Stack } from './stack';
import {
  agentArgs,
  handshake,
  presented,
  spawnAgent,
  spawnNginxAgent,
  startStack,
  uniqueName,
} from './stack';

let stack: Stack;
let nginx: Awaited<ReturnType<typeof startNginx>>;
let agent: AgentProcess;
let token: string;
let dir: string;
const tmp = mkdtempSync(join(tmpdir(), 'certq-agent-test-'));
const a = uniqueName('nginx-a');
const b = uniqueName('nginx-b');
const certs: Record<string, { id: string; fingerprint: string }> = {};
let tenantA: { id: string; token: string };
let tenantB: { id: string; token: string };

const fingerprintOf = (pem: string) =>
  new X509Certificate(pem).fingerprint256.replaceAll(':', '').toLowerCase();

/** Every name's files are whole: the chain parses and the key belongs to its leaf. */
function expectCompleteFiles(root: string, name: string) {
  const chain = readFileSync(join(root, name, 'fullchain.pem'), 'utf8');
  const key = readFileSync(join(root, name, 'privkey.pem'), 'utf8');
  const leaf = new X509Certificate(chain);
  expect(leaf.checkPrivateKey(createPrivateKey(key)), name).toBe(true);
  expect(statSync(join(root, name, 'privkey.pem')).mode & 0o777).toBe(0o600);
  return fingerprintOf(chain);
}

beforeAll(async () => {
  stack = await startStack();
  tenantA = await stack.createTenant();
  tenantB = await stack.createTenant();
  [certs.a, certs.b] = await Promise.all([
    stack.issue(tenantA.token, [a]),
    stack.issue(tenantB.token, [`*.${b}`, b]),
  ]);
  token = await stack.edgeToken();
  dir = join(tmp, 'nginx-certs');
  // Someone else's files in the same directory: the agent must leave them alone.
  mkdirSync(join(dir, 'hand-made'), { recursive: true });
  writeFileSync(join(dir, 'hand-made', 'fullchain.pem'), 'not ours');
  writeFileSync(join(dir, 'README.txt'), 'not ours either');
  const once = spawnAgent([...agentArgs(stack, token, dir), '--once']);
  expect(await once.exited, once.output()).toBe(0);
  nginx = await startNginx({ certDir: dir });
  agent = spawnNginxAgent(stack, token, dir, nginx.reloadCommand, 200);
});
afterAll(async () => {
  agent?.child.kill('SIGKILL');
  await nginx?.stop();
  await stack?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('nginx fed by certq-agent --format nginx', () => {
  it('writes the documented layout (keys 0600) and leaves files it did not write alone', () => {
    expect(expectCompleteFiles(dir, a)).toBe(certs.a!.fingerprint);
    expect(expectCompleteFiles(dir, `_wildcard.${b}`)).toBe(certs.b!.fingerprint);
    const map = readFileSync(join(dir, 'certq-names.map'), 'utf8');
    expect(map).toContain(`${a} ${a};`);
    expect(map).toContain(`*.${b} _wildcard.${b};`);
    expect(map).toContain(`${b} _wildcard.${b};`);
    expect(readFileSync(join(dir, 'hand-made', 'fullchain.pem'), 'utf8')).toBe('not ours');
    expect(readFileSync(join(dir, 'README.txt'), 'utf8')).toBe('not ours either');
  });

  it('completes handshakes for each tenant’s names against the simulator root only', async () => {
    expect(await presented(nginx.port, stack.rootPem, [a, b, `api.${b}`])).toEqual({
      [a]: certs.a!.fingerprint,
      [b]: certs.b!.fingerprint,
      [`api.${b}`]: certs.b!.fingerprint,
    });
  });

  it('brings a renewal to nginx with a reload, not a restart', async () => {
    const masterPid = nginx.pid();
    const reloads = () => agent.output().match(/reloaded \(\d+ ms\)/g)?.length ?? 0;
    const reloadsBefore = reloads();
    const renewed = await stack.issue(tenantA.token, [a]);
    await waitFor(
      async () => {
        const r = await handshake(nginx.port, a, stack.rootPem);
        return r.ok && r.fingerprint === renewed.fingerprint;
      },
      {
        timeoutMs: 30_000,
        intervalMs: 100,
        message: `nginx to serve the renewed certificate:\n${agent.output()}`,
      },
    );
    expect(nginx.pid()).toBe(masterPid);
    expect(process.kill(masterPid, 0)).toBe(true);
    // nginx loads variable certificate paths per handshake, so the new files may serve before the
    // reload; the agent still reloads once for the batch (a new name needs the map reloaded).
    await waitFor(() => reloads() > reloadsBefore, { timeoutMs: 15_000, message: 'the reload' });
    certs.a = renewed;
  });

  it('keeps nginx serving while certq is down, and catches up when it is back', async () => {
    const replica = await stack.startReplica();
    await stack.stopApi();
    const renewed = await stack.issueVia(replica.url, tenantB.token, [`*.${b}`, b]);
    // certq (as the agent knows it) is away: nginx goes on serving the old certificate.
    await waitFor(() => /unreachable|retrying/.test(agent.output()), {
      timeoutMs: 30_000,
      message: 'the agent to notice',
    });
    expect(await handshake(nginx.port, b, stack.rootPem)).toEqual({
      ok: true,
      fingerprint: certs.b!.fingerprint,
    });
    await stack.startApi();
    await waitFor(
      async () => {
        const r = await handshake(nginx.port, `www.${b}`, stack.rootPem);
        return r.ok && r.fingerprint === renewed.fingerprint;
      },
      { timeoutMs: 45_000, intervalMs: 200, message: `the agent to catch up:\n${agent.output()}` },
    );
    certs.b = renewed;
  });

  it('killed mid-sync and restarted: complete files, nothing missed', async () => {
    const many = await Promise.all(
      Array.from({ length: 8 }, (_, i) => stack.issue(tenantA.token, [uniqueName(`bulk${i}`)])),
    );
    const fresh = join(tmp, 'killed');
    const first = spawnAgent([...agentArgs(stack, token, fresh), '--debounce-ms', '0']);
    await waitFor(() => first.output().includes('wrote '), {
      timeoutMs: 30_000,
      intervalMs: 1,
      message: 'a first write',
    });
    first.child.kill('SIGKILL');
    await first.exited;
    const again = spawnAgent([...agentArgs(stack, token, fresh), '--once']);
    expect(await again.exited, again.output()).toBe(0);
    const current = await stack.admin('GET', '/v1/certificates?limit=100');
    const expected = current.body.certificates as { domains: string[]; fingerprint: string }[];
    expect(expected.length).toBe(many.length + 2);
    for (const cert of expected) {
      const name = cert.domains[0]!.replace(/^\*\./, '_wildcard.');
      expect(expectCompleteFiles(fresh, name)).toBe(cert.fingerprint);
    }
    const leftovers = readdirSync(fresh, { recursive: true })
      .map(String)
      .filter((f) => f.includes('.certq-tmp-'));
    expect(leftovers).toEqual([]);
    expect(existsSync(join(fresh, '.certq-agent.json'))).toBe(true);
  });

  it('exits non-zero with a clear message on a bad token', async () => {
    // Three agents at once (each start costs a few seconds of tsx on a loaded machine).
    const bad = spawnAgent([
      '--api',
      stack.apiUrl,
      '--token',
      'cqe_not-a-token',
      '--dir',
      join(tmp, 'bad'),
      '--once',
    ]);
    const tenantToken = spawnAgent([
      '--api',
      stack.apiUrl,
      '--token',
      tenantA.token,
      '--dir',
      join(tmp, 'bad2'),
    ]);
    const usage = spawnAgent(['--api', stack.apiUrl, '--dir', join(tmp, 'bad3')]);
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toContain('certq refused the token (401)');
    expect(await tenantToken.exited).toBe(2);
    expect(tenantToken.output()).toContain('certq refused the token (403)');
    expect(await usage.exited).toBe(64);
    expect(usage.output()).toContain('--token is required');
  });
});
