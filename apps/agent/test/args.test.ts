import { describe, expect, it } from 'vitest';
import { parseAgentArgs, UsageError } from '../src/args';
import { fileNameOf, splitBundle } from '../src/files';

const base = ['--api', 'https://certq.example/', '--token', 'cqe_x', '--dir', '/tmp/certs'];

describe('certq-agent arguments', () => {
  it('takes the documented flags with their defaults', () => {
    expect(parseAgentArgs(base, {})).toEqual({
      api: 'https://certq.example',
      token: 'cqe_x',
      dir: '/tmp/certs',
      format: 'nginx',
      reload: undefined,
      once: false,
      waitSeconds: 30,
      debounceMs: 500,
      listen: undefined,
      runtimeApi: undefined,
      health: undefined,
      staleAfterSeconds: 120,
    });
    const full = parseAgentArgs(
      [...base, '--format', 'haproxy', '--reload', 'systemctl reload haproxy', '--once'],
      {},
    );
    expect(full).toMatchObject({ format: 'haproxy', reload: 'systemctl reload haproxy', once: true });
    expect(
      parseAgentArgs(
        [
          ...base,
          '--format',
          'haproxy',
          '--runtime-api',
          '/run/haproxy/admin.sock',
          '--health',
          '127.0.0.1:9470',
        ],
        {},
      ),
    ).toMatchObject({
      runtimeApi: { path: '/run/haproxy/admin.sock' },
      health: { host: '127.0.0.1', port: 9470 },
    });
    expect(
      parseAgentArgs([...base, '--format', 'caddy', '--listen', 'unix:/run/certq.sock'], {}),
    ).toMatchObject({
      format: 'caddy',
      listen: { path: '/run/certq.sock' },
    });
    expect(parseAgentArgs([...base, '--format', 'caddy', '--listen', '[::1]:9443'], {})).toMatchObject({
      listen: { host: '::1', port: 9443 },
    });
  });

  it('reads the API and token from the environment when the flags are absent', () => {
    expect(
      parseAgentArgs(['--dir', 'd'], { CERTQ_API: 'http://a:3000', CERTQ_TOKEN: 'cqe_e' }),
    ).toMatchObject({
      api: 'http://a:3000',
      token: 'cqe_e',
    });
  });

  it('refuses what it does not understand, naming the flag', () => {
    const cases: [string[], RegExp][] = [
      [['--token', 't', '--dir', 'd'], /--api is required/],
      [['--api', 'http://a', '--dir', 'd'], /--token is required/],
      [['--api', 'http://a', '--token', 't'], /--dir is required/],
      [[...base, '--format', 'apache'], /--format: must be nginx, haproxy or caddy/],
      [[...base, '--format', 'caddy'], /--listen is required with --format caddy/],
      [[...base, '--listen', '127.0.0.1:1'], /--listen: only with --format caddy/],
      [[...base, '--runtime-api', '/s'], /--runtime-api: only with --format haproxy/],
      [[...base, '--health', 'nowhere'], /--health: must be host:port/],
      [[...base, '--wait', '61'], /--wait: must be between 1 and 60/],
      [[...base, '--debounce-ms', 'soon'], /--debounce-ms: must be a whole number/],
      [[...base, '--bogus'], /bogus/],
      [[...base, 'extra'], /unexpected argument: extra/],
      [['--api', 'ftp://a', '--token', 't', '--dir', 'd'], /--api: must be http/],
    ];
    for (const [argv, message] of cases) {
      expect(() => parseAgentArgs(argv, {})).toThrow(UsageError);
      expect(() => parseAgentArgs(argv, {})).toThrow(message);
    }
    expect(parseAgentArgs(['--help'], {})).toBe('help');
    expect(parseAgentArgs(['--version'], {})).toBe('version');
  });
});

describe('file names and bundles', () => {
  it('names files after the first domain, * as _wildcard, and refuses anything path-like', () => {
    expect(fileNameOf('*.example.com')).toBe('_wildcard.example.com');
    expect(fileNameOf('www.example.com')).toBe('www.example.com');
    expect(fileNameOf('../etc')).toBeUndefined();
    expect(fileNameOf('a/b.com')).toBeUndefined();
  });

  it('hashes names that would be an index file’s or too long for a file, never clashing with a domain', () => {
    const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(50)}.com`;
    for (const domain of ['certq-names.map', 'crt-list.txt', long, `*.${long.slice(4)}`]) {
      const name = fileNameOf(domain)!;
      expect(name, domain).toMatch(/^_hashed\.[0-9a-f]{32}$/);
      expect(`${name}.pem`.length).toBeLessThan(255);
    }
    expect(fileNameOf('certq-names.map')).not.toBe(fileNameOf('crt-list.txt'));
    expect(fileNameOf('www.certq-names.map')).toBe('www.certq-names.map');
  });

  it('splits a bundle into the chain and the key, and refuses one without a key', () => {
    const cert = '-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----';
    const key = '-----BEGIN EC PRIVATE KEY-----\nBBB\n-----END EC PRIVATE KEY-----';
    expect(splitBundle(`${cert}\n${cert}\n${key}\n`)).toEqual({
      chain: `${cert}\n${cert}\n`,
      key: `${key}\n`,
    });
    expect(() => splitBundle(`${cert}\n`)).toThrow(/no key/);
  });
});
