import { describe, expect, it } from 'vitest';
import { filteredLookup, isPublicAddress, webhookUrlProblem } from '../src/address-policy';

const refused: Record<string, string[]> = {
  loopback: ['127.0.0.1', '127.255.255.254', '::1'],
  private: ['10.0.0.1', '172.16.0.1', '172.31.255.255', '192.168.1.1'],
  'link-local': ['169.254.169.254', 'fe80::1', 'fe80::1%eth0'],
  cgnat: ['100.64.0.1', '100.127.255.255'],
  multicast: ['224.0.0.1', '239.255.255.250', 'ff02::1'],
  unspecified: ['0.0.0.0', '::'],
  broadcast: ['255.255.255.255'],
  'ipv6 ula': ['fc00::1', 'fd12:3456::1'],
  'ipv4-mapped ipv6': ['::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:169.254.169.254', '::ffff:10.1.2.3'],
  'nat64 / 6to4 / compatible': ['64:ff9b::a9fe:a9fe', '2002:7f00:1::', '::127.0.0.1'],
  documentation: ['192.0.2.1', '198.51.100.7', '203.0.113.9', '2001:db8::1'],
};

describe('address policy', () => {
  for (const [kind, addresses] of Object.entries(refused))
    it(`refuses ${kind}`, () => {
      for (const address of addresses) expect(isPublicAddress(address), address).toBe(false);
    });

  it('allows public unicast addresses', () => {
    for (const address of [
      '93.184.215.14',
      '8.8.8.8',
      '172.32.0.1',
      '100.128.0.1',
      '2606:4700::1111',
      '::ffff:8.8.8.8',
    ])
      expect(isPublicAddress(address), address).toBe(true);
  });

  it('webhook URLs: IP literals, names resolving inside, credentials; allowPrivate lets everything through', async () => {
    const resolveAll = async (host: string) => {
      if (host === 'inside.example') return [{ address: '127.0.0.1', family: 4 }];
      if (host === 'mixed.example')
        return [
          { address: '93.184.215.14', family: 4 },
          { address: '10.0.0.5', family: 4 },
        ];
      if (host === 'public.example') return [{ address: '93.184.215.14', family: 4 }];
      throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' });
    };
    const policy = { allowPrivate: false, resolveAll };
    expect(await webhookUrlProblem('http://127.0.0.1:4010/_sim/reset', policy)).toMatch(/not a public/);
    expect(await webhookUrlProblem('http://[::ffff:127.0.0.1]/', policy)).toMatch(/not a public/);
    expect(await webhookUrlProblem('http://169.254.169.254/latest/meta-data', policy)).toMatch(
      /not a public/,
    );
    expect(await webhookUrlProblem('http://localhost:3000/', policy)).toMatch(/not a public/);
    expect(await webhookUrlProblem('https://inside.example/hook', policy)).toMatch(/resolves to an address/);
    expect(await webhookUrlProblem('https://mixed.example/hook', policy)).toMatch(/resolves to an address/);
    expect(await webhookUrlProblem('https://nowhere.example/hook', policy)).toMatch(/does not resolve/);
    expect(await webhookUrlProblem('https://u:p@public.example/hook', policy)).toMatch(/credentials/);
    expect(await webhookUrlProblem('https://public.example/hook', policy)).toBeUndefined();
    expect(await webhookUrlProblem('http://127.0.0.1:1/', { allowPrivate: true })).toBeUndefined();
  });

  it('the connect-time lookup drops non-public answers and fails with none left', async () => {
    const lookup = filteredLookup({
      allowPrivate: false,
      resolveAll: async (host) =>
        host === 'mixed.example'
          ? [
              { address: '127.0.0.1', family: 4 },
              { address: '93.184.215.14', family: 4 },
            ]
          : [{ address: '10.0.0.1', family: 4 }],
    });
    const run = (host: string) =>
      new Promise<{ error: NodeJS.ErrnoException | null; address: unknown }>((resolve) =>
        lookup(host, {}, (error, address) => resolve({ error, address })),
      );
    expect(await run('mixed.example')).toEqual({ error: null, address: '93.184.215.14' });
    const blocked = await run('inside.example');
    expect(blocked.error?.code).toBe('EADDRBLOCKED');
    expect(blocked.error?.message).not.toMatch(/10\.0\.0\.1/);
  });
});
