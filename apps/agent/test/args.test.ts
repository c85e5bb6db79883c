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
    });
    const full = parseAgentArgs(
      [...base, '--format', 'haproxy', '--reload', 'systemctl reload haproxy', '--once'],
      {},
    );
    expect(full).toMatchObject({ format: 'haproxy', reload: 'systemctl reload haproxy', once: true });
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
      [[...base, '--format', 'apache'], /--format: must be nginx or haproxy/],
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
  });
});

describe('file names and bundles', () => {
  it('names files after the first domain, * as _wildcard, and refuses anything path-like', () => {
    expect(fileNameOf('*.example.com')).toBe('_wildcard.example.com');
    expect(fileNameOf('www.example.com')).toBe('www.example.com');
    expect(fileNameOf('../etc')).toBeUndefined();
    expect(fileNameOf('a/b.com')).toBeUndefined();
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
