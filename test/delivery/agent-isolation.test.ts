import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '@certq/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentArgs, type Stack, spawnAgent, startStack, uniqueName } from './stack';

// One tenant's unwritable certificate must never hold back the others (nor the exit code).
let stack: Stack;
const tmp = mkdtempSync(join(tmpdir(), 'certq-agent-isolation-'));
const tag = randomBytes(3).toString('hex');
const ordinary = uniqueName('iso-ok');
const indexName = 'certq-names.map'; // a valid name (.map is a top-level domain): the nginx layout's map file
const long = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${tag}${'d'.repeat(30)}.example.com`;
const blocked = uniqueName('iso-blocked'); // someone else's file sits where its directory would go
let token: string;

beforeAll(async () => {
  stack = await startStack();
  const tenant = await stack.createTenant();
  for (const domains of [[indexName], [long], [blocked], [ordinary]])
    await stack.issue(tenant.token, domains);
  token = await stack.edgeToken();
});
afterAll(async () => {
  await stack?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('certq-agent isolates failures per certificate', () => {
  it('nginx --once: hashes a name that is its own map file’s or too long, skips an unwritable one, exits 0', async () => {
    const dir = join(tmp, 'nginx');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, blocked), 'not ours');
    const agent = spawnAgent([...agentArgs(stack, token, dir), '--once']);
    expect(await agent.exited, agent.output()).toBe(0);
    const map = readFileSync(join(dir, 'certq-names.map'), 'utf8');
    expect(map).toContain(`${ordinary} ${ordinary};`);
    expect(map).toMatch(/^certq-names\.map _hashed\.[0-9a-f]{32};$/m);
    const longLine = map.split('\n').find((l) => l.startsWith(`${long} `));
    expect(longLine).toMatch(/ _hashed\.[0-9a-f]{32};$/);
    const hashed = longLine!.split(' ')[1]!.replace(/;$/, '');
    expect(readFileSync(join(dir, hashed, 'fullchain.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
    expect(readFileSync(join(dir, ordinary, 'fullchain.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
    expect(map).not.toContain(blocked);
    expect(readFileSync(join(dir, blocked), 'utf8')).toBe('not ours');
    const skips = agent
      .output()
      .split('\n')
      .filter((l) => l.includes('skipping certificate'));
    expect(skips.length, agent.output()).toBe(1);
    expect(JSON.parse(skips[0]!)).toMatchObject({ level: 'warn', domain: blocked });
  });

  it('haproxy --once: a first domain too long for <name>.pem is hashed', async () => {
    const dir = join(tmp, 'haproxy');
    const agent = spawnAgent([...agentArgs(stack, token, dir), '--format', 'haproxy', '--once']);
    expect(await agent.exited, agent.output()).toBe(0);
    const list = readFileSync(join(dir, 'crt-list.txt'), 'utf8');
    expect(list).toMatch(new RegExp(`/_hashed\\.[0-9a-f]{32}\\.pem ${long.replaceAll('.', '\\.')}$`, 'm'));
    expect(list).toContain(`${join(dir, `${ordinary}.pem`)} ${ordinary}`);
    expect(agent.output()).not.toContain('skipping');
  });

  it('--health: /metrics counts the skipped certificate and /healthz says the sync is fresh', async () => {
    const dir = join(tmp, 'nginx'); // the blocked name is still blocked there
    const port = await freePort();
    const agent = spawnAgent([
      ...agentArgs(stack, token, dir),
      '--health',
      `127.0.0.1:${port}`,
      '--wait',
      '5',
    ]);
    try {
      const health = await waitFor(
        async () => {
          const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
          return res?.status === 200 ? ((await res.json()) as Record<string, unknown>) : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 50, message: `a healthy agent:\n${agent.output()}` },
      );
      expect(health).toMatchObject({ status: 'ok', cursorLag: 0, skippedCertificates: 1 });
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^certq_agent_skipped_certificates 1$/m);
      expect(metrics).toMatch(/^certq_agent_cursor_lag 0$/m);
      expect(metrics).toMatch(/^certq_agent_certificates 3$/m);
      expect(metrics).toMatch(/^certq_agent_last_success_timestamp_seconds [1-9]/m);
    } finally {
      agent.child.kill('SIGTERM');
      expect(await agent.exited).toBe(0);
    }
  });
});
