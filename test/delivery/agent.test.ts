import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '@certq/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentArgs, buildAgentBundle, type Stack, spawnAgent, startStack, uniqueName } from './stack';

// certq-agent's own promises: one tenant's unwritable certificate never holds back the others (nor the
// exit code), its health endpoint, and the standalone file.
let stack: Stack;
const tmp = mkdtempSync(join(tmpdir(), 'certq-agent-isolation-'));
const tag = randomBytes(3).toString('hex');
const ordinary = uniqueName('iso-ok');
const indexName = 'certq-names.map'; // a valid name (.map is a top-level domain): the nginx layout's map file
const long = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${tag}${'d'.repeat(30)}.example.com`;
const blocked = uniqueName('iso-blocked'); // someone else's file sits where its directory would go
let token: string;
let tenantToken: string;

beforeAll(async () => {
  stack = await startStack();
  const tenant = await stack.createTenant();
  tenantToken = tenant.token;
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

describe('a retired certificate', () => {
  it('has its files deleted and its names dropped from the index at the next sync', async () => {
    const retiring = uniqueName('iso-retired');
    const cert = await stack.issue(tenantToken, [retiring]);
    const dir = join(tmp, 'retire');
    const first = spawnAgent([...agentArgs(stack, token, dir), '--once']);
    expect(await first.exited, first.output()).toBe(0);
    expect(existsSync(join(dir, retiring, 'fullchain.pem'))).toBe(true);
    const retired = await stack.request(tenantToken, 'DELETE', `/v1/certificates/${cert.id}`);
    expect(retired.status, retired.text).toBe(200);
    const again = spawnAgent([...agentArgs(stack, token, dir), '--once']);
    expect(await again.exited, again.output()).toBe(0);
    expect(existsSync(join(dir, retiring))).toBe(false);
    expect(readFileSync(join(dir, 'certq-names.map'), 'utf8')).not.toContain(retiring);
    expect(readFileSync(join(dir, 'certq-names.map'), 'utf8')).toContain(`${ordinary} ${ordinary};`);
  });
});

describe('the standalone agent', () => {
  it('is one file: copied alone into an empty directory, plain node runs --once and writes the nginx layout', async () => {
    const alone = join(tmp, 'alone');
    mkdirSync(alone);
    copyFileSync(buildAgentBundle(), join(alone, 'certq-agent.mjs'));
    expect(readdirSync(alone)).toEqual(['certq-agent.mjs']);
    // Nothing but Node: no workspace, no node_modules on the way up, a bare environment.
    const env = { PATH: process.env.PATH!, CERTQ_TOKEN: token };
    const version = spawnSync(process.execPath, ['certq-agent.mjs', '--version'], { cwd: alone, env });
    const { version: expected } = JSON.parse(
      readFileSync(new URL('../../apps/agent/package.json', import.meta.url), 'utf8'),
    );
    expect(version.stdout.toString()).toBe(`certq-agent ${expected}\n`);
    expect(spawnSync(process.execPath, ['certq-agent.mjs', '--help'], { cwd: alone, env }).status).toBe(0);
    const child = spawn(
      process.execPath,
      ['certq-agent.mjs', '--api', stack.apiUrl, '--dir', 'certs', '--once'],
      { cwd: alone, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c;
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, output).toBe(0);
    for (const line of output.trim().split('\n')) expect(() => JSON.parse(line), line).not.toThrow();
    expect(readFileSync(join(alone, 'certs', ordinary, 'fullchain.pem'), 'utf8')).toContain(
      'BEGIN CERTIFICATE',
    );
    expect(readFileSync(join(alone, 'certs', 'certq-names.map'), 'utf8')).toContain(
      `${ordinary} ${ordinary};`,
    );
  });
});
