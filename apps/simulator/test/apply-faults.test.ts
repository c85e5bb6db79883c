import { describe, expect, it } from 'vitest';
import { loadSimulatorOptions } from '../src/index';
import { start } from './helpers';

describe('SIM_APPLY_FAULTS', () => {
  it('502_after_create: the application exists although the answer is a gateway 502; the next apply is answered', async () => {
    const { call, sim } = await start({ applyFaults: ['502_after_create'] });
    const first = await call('POST', '/v1/cert/apply', { domainList: ['a.example.com'] });
    expect(first.status).toBe(502);
    expect(first.contentType).toMatch(/text\/html/);
    expect(first.text).toContain('502 Bad Gateway');
    expect(sim.stats().appliesByDomains['a.example.com']).toBe(1);
    // The application was created: the next id is one further on.
    const second = await call<string>('POST', '/v1/cert/apply', { domainList: ['a.example.com'] });
    expect(second.json.code).toBe(0);
    const created = await call<{ status: number }>('GET', `/v1/cert/apply/${Number(second.json.data) - 1}`);
    expect(created.json.data.status).toBe(1);
    expect(sim.stats().appliesByDomains['a.example.com']).toBe(2);
    // Faults count per domain set: another set meets its own first fault.
    expect((await call('POST', '/v1/cert/apply', { domainList: ['b.example.com'] })).status).toBe(502);
  });

  it('504_after_create and refuse_unverified, in the order listed, then normal answers', async () => {
    const { call, sim } = await start({ applyFaults: ['refuse_unverified', '504_after_create'] });
    const refused = await call('POST', '/v1/cert/apply', { domainList: ['c.example.com'] });
    expect(refused.status).toBe(200);
    expect(refused.json).toMatchObject({ code: 400, msg: 'domain not verified: c.example.com' });
    expect(sim.stats().appliesByDomains['c.example.com']).toBeUndefined();
    const gateway = await call('POST', '/v1/cert/apply', { domainList: ['c.example.com'] });
    expect(gateway.status).toBe(504);
    expect(sim.stats().appliesByDomains['c.example.com']).toBe(1);
    expect((await call('POST', '/v1/cert/apply', { domainList: ['c.example.com'] })).json.code).toBe(0);
  });

  it('reads SIM_APPLY_FAULTS and refuses an unknown fault by name', () => {
    expect(
      loadSimulatorOptions({ SIM_APPLY_FAULTS: '502_after_create, refuse_unverified' }).applyFaults,
    ).toEqual(['502_after_create', 'refuse_unverified']);
    expect(() => loadSimulatorOptions({ SIM_APPLY_FAULTS: '503' })).toThrow(/SIM_APPLY_FAULTS/);
  });
});
