import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { it } from '../apps/api/test/helpers';
import { buildProgram, EXIT, runCli } from '../apps/cli/src';

/** Runs the CLI in this process (what bin/certq.js does), capturing what it prints. */
async function certq(args: string[], credentials: { api?: string; token?: string } = {}) {
  let stdout = '';
  let stderr = '';
  const write = { out: process.stdout.write, err: process.stderr.write };
  const saved = { api: process.env.CERTQ_API, token: process.env.CERTQ_TOKEN };
  process.stdout.write = ((chunk: string) => {
    stdout += chunk;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => {
    stderr += chunk;
    return true;
  }) as typeof process.stderr.write;
  delete process.env.CERTQ_API;
  delete process.env.CERTQ_TOKEN;
  if (credentials.api) process.env.CERTQ_API = credentials.api;
  if (credentials.token) process.env.CERTQ_TOKEN = credentials.token;
  try {
    const code = await runCli(['node', 'certq', ...args]);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = write.out;
    process.stderr.write = write.err;
    for (const [key, value] of Object.entries({ CERTQ_API: saved.api, CERTQ_TOKEN: saved.token }))
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
  }
}

/** commander's Command, as the program builds it. */
type Command = ReturnType<typeof buildProgram>;

function commandPaths(command: Command, prefix: string[] = []): string[][] {
  return command.commands
    .filter((c) => c.name() !== 'help')
    .flatMap((c) => [[...prefix, c.name()], ...commandPaths(c, [...prefix, c.name()])]);
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('certq exit codes and help', () => {
  it('--help works on every command and lists the exit codes at the top', async () => {
    const paths = commandPaths(buildProgram(() => {}));
    expect(paths.map((p) => p.join(' '))).toEqual(
      expect.arrayContaining([
        'tenants create',
        'orders import',
        'orders watch',
        'orders retry',
        'renew',
        'certs get',
      ]),
    );
    for (const path of paths) {
      const help = await certq([...path, '--help']);
      expect(help.code, path.join(' ')).toBe(EXIT.ok);
      expect(help.stdout).toContain(`Usage: certq ${path.join(' ')}`);
    }
    const top = await certq(['--help']);
    expect(top.stdout).toMatch(/Exit codes:[\s\S]*7 {2}done, not all of it succeeded/);
  });

  it('answers bad usage with 2, a refused token with 3, an unknown id with 4, a refused request with 5', async ({
    api,
  }) => {
    const admin = { api: api.url, token: api.config.ADMIN_TOKEN! };
    expect((await certq(['orders', 'list'])).stderr).toMatch(/no API URL: pass --api <url> or set CERTQ_API/);
    expect((await certq(['orders', 'list'], { api: api.url })).code).toBe(EXIT.usage);
    expect((await certq(['orders', 'list', '--bogus'], admin)).code).toBe(EXIT.usage);
    expect((await certq(['orderz'], admin)).code).toBe(EXIT.usage);
    const badStatus = await certq(['orders', 'list', '--status', 'done'], admin);
    expect(badStatus.code).toBe(EXIT.usage);
    expect(badStatus.stderr).toMatch(/--status: one of verifying, applying/);
    expect((await certq(['orders', 'retry'], admin)).code).toBe(EXIT.usage);
    expect((await certq(['--api', 'ftp://x', 'orders', 'list'], admin)).code).toBe(EXIT.usage);

    const refusedToken = await certq(['orders', 'list'], { api: api.url, token: 'not-a-token' });
    expect(refusedToken.code).toBe(EXIT.auth);
    expect(refusedToken.stderr).toMatch(/^certq: 401 unauthorized/);

    const unknown = await certq(['orders', 'get', '00000000-0000-4000-8000-000000000000'], admin);
    expect(unknown.code).toBe(EXIT.notFound);

    const tenant = await api.createTenant();
    const invalid = await certq(['orders', 'create', 'not_a..domain'], { api: api.url, token: tenant.token });
    expect(invalid.code).toBe(EXIT.refused);
    expect(invalid.stderr).toMatch(/400 validation_failed: domains\[0\]/);

    // The flags win over the environment.
    const flags = await certq(['--api', api.url, '--token', tenant.token, '--json', 'orders', 'list'], {
      api: 'http://127.0.0.1:9',
      token: 'ignored',
    });
    expect(flags.code).toBe(EXIT.ok);
    expect(JSON.parse(flags.stdout)).toEqual([]);
  });

  it('answers 6 when the API cannot be reached', async () => {
    const down = await certq(['orders', 'list'], {
      api: `http://127.0.0.1:${await closedPort()}`,
      token: 't',
    });
    expect(down.code).toBe(EXIT.unavailable);
    expect(down.stderr).toMatch(/the API could not be reached \(ECONNREFUSED\)/);
  });

  it('is built on @certq/sdk alone: no import of another certq app or package', async () => {
    const src = join(import.meta.dirname, '..', 'apps', 'cli', 'src');
    const files = (await readdir(src, { recursive: true })).filter((f) => f.endsWith('.ts'));
    for (const file of files) {
      const text = await readFile(join(src, file), 'utf8');
      for (const [, name] of text.matchAll(/from '(@certq\/[^/']+)/g)) expect(name, file).toBe('@certq/sdk');
    }
  });
});
