import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selfSigned } from '@certq/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestEnv,
  insertCertificate,
  startTestApi,
  type TestApi,
  type TestEnv,
  uniqueDomain,
} from '../apps/api/test/helpers';
import { runCli } from './cli-run';

/** certq certs upload|retire and tenants suspend|resume|delete, as a user runs them, against the API. */
let env: TestEnv;
let api: TestApi;
let dir: string;
let admin: { api: string; token: string };

beforeAll(async () => {
  env = await createTestEnv();
  api = await startTestApi(env);
  admin = { api: api.url, token: api.config.ADMIN_TOKEN! };
  dir = mkdtempSync(join(tmpdir(), 'certq-cli-life-'));
});
afterAll(async () => {
  await api?.close();
  await env?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('certq for a certificate’s and a tenant’s end of life', () => {
  it('certs upload, certs list --status, certs retire', async () => {
    const tenant = await api.createTenant();
    const domain = uniqueDomain('cli-upload');
    selfSigned(domain, { dir });
    const asTenant = { api: api.url, token: tenant.token };
    const up = await runCli(
      ['--json', 'certs', 'upload', '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem')],
      asTenant,
    );
    expect(up.code, up.stderr).toBe(0);
    const uploaded = up.json();
    expect(uploaded).toMatchObject({ status: 'uploaded', domains: [domain] });
    const listed = await runCli(['certs', 'list', '--status', 'uploaded'], asTenant);
    expect(listed.stdout).toContain(uploaded.id);
    expect(listed.stdout).toContain('uploaded');

    const retired = await runCli(['--json', 'certs', 'retire', uploaded.id], asTenant);
    expect(retired.code, retired.stderr).toBe(0);
    expect(retired.json()).toMatchObject({ id: uploaded.id, status: 'retired' });
    const bad = await runCli(
      ['certs', 'upload', '--cert', join(dir, 'key.pem'), '--key', join(dir, 'key.pem')],
      asTenant,
    );
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/no PEM CERTIFICATE/);
  });

  it('tenants suspend, resume and delete print what they touched', async () => {
    const tenant = await api.createTenant();
    await insertCertificate(api, tenant);
    const suspended = await runCli(['tenants', 'suspend', tenant.id], admin);
    expect(suspended.code, suspended.stderr).toBe(0);
    expect(suspended.stdout).toContain(
      'suspended (ordersCancelled 0, certificatesServed 1, certificatesWithdrawn 0)',
    );
    const resumed = await runCli(['--json', 'tenants', 'resume', tenant.id], admin);
    expect(resumed.json()).toMatchObject({ changed: true, tenant: { status: 'active' } });
    const deleted = await runCli(['--json', 'tenants', 'delete', tenant.id], admin);
    expect(deleted.json()).toMatchObject({ changed: true, affected: { certificatesRetired: 1 } });
    const listed = await runCli(['tenants', 'list'], admin);
    expect(listed.stdout).toMatch(new RegExp(`${tenant.id}.*deleted`));
  });
});
