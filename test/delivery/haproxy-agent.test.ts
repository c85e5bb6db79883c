import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHaproxy } from '@certq/testing/servers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentArgs, presented, type Stack, spawnAgent, startStack, uniqueName } from './stack';

let stack: Stack;
let haproxy: Awaited<ReturnType<typeof startHaproxy>>;
const tmp = mkdtempSync(join(tmpdir(), 'certq-haproxy-test-'));
const dir = join(tmp, 'certs');
const a = uniqueName('hap-a');
const b = uniqueName('hap-b');
const certs: Record<string, { id: string; fingerprint: string }> = {};

beforeAll(async () => {
  stack = await startStack();
  const [tenantA, tenantB] = [await stack.createTenant(), await stack.createTenant()];
  [certs.a, certs.b] = await Promise.all([
    stack.issue(tenantA.token, [a, `www.${a}`]),
    stack.issue(tenantB.token, [`*.${b}`]),
  ]);
  const token = await stack.edgeToken();
  const agent = spawnAgent([...agentArgs(stack, token, dir), '--format', 'haproxy', '--once']);
  expect(await agent.exited, agent.output()).toBe(0);
  haproxy = await startHaproxy({ certDir: dir });
});
afterAll(async () => {
  await haproxy?.stop();
  await stack?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('HAProxy fed by certq-agent --format haproxy', () => {
  it('writes <name>.pem (chain then key, 0600) and a crt-list naming each certificate’s domains', () => {
    const pem = readFileSync(join(dir, `${a}.pem`), 'utf8');
    expect(pem.indexOf('BEGIN CERTIFICATE')).toBeLessThan(pem.indexOf('PRIVATE KEY'));
    expect(statSync(join(dir, `${a}.pem`)).mode & 0o777).toBe(0o600);
    const list = readFileSync(join(dir, 'crt-list.txt'), 'utf8');
    expect(list).toContain(`${join(dir, `${a}.pem`)} ${a} www.${a}`);
    expect(list).toContain(`${join(dir, `_wildcard.${b}.pem`)} *.${b}`);
  });

  it('completes one handshake per tenant domain with the right certificate', async () => {
    expect(await presented(haproxy.port, stack.rootPem, [a, `www.${a}`, `shop.${b}`])).toEqual({
      [a]: certs.a!.fingerprint,
      [`www.${a}`]: certs.a!.fingerprint,
      [`shop.${b}`]: certs.b!.fingerprint,
    });
  });
});
