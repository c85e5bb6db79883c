import { describe, expect, it } from 'vitest';
import { createSimulator, DEFAULT_OPTIONS, loadSimulatorOptions } from '../src/index';

describe('loadSimulatorOptions', () => {
  it('has the documented defaults', () => {
    const options = loadSimulatorOptions({});
    expect(options).toMatchObject({
      apiKeys: [],
      verify: 'auto',
      issueSeconds: 30,
      failRate: 0,
      latencyMs: 0,
      port: 4010,
      pollFloorMs: 10_000,
      callbackRetry: { attempts: 5, baseMs: 1000 },
    });
    expect(options.caDir).toBeUndefined();
    expect(DEFAULT_OPTIONS.pollFloorMs).toBe(10_000);
  });

  it('reads every SIM_* variable', () => {
    const options = loadSimulatorOptions({
      SIM_API_KEYS: ' k1, k2,,',
      SIM_VERIFY: 'records',
      SIM_ISSUE_SECONDS: '0',
      SIM_FAIL_RATE: '0.25',
      SIM_LATENCY_MS: '50',
      SIM_PORT: '4999',
      SIM_HOST: '0.0.0.0',
      SIM_CA_DIR: '/tmp/ca',
    });
    expect(options).toMatchObject({
      apiKeys: ['k1', 'k2'],
      verify: 'records',
      issueSeconds: 0,
      failRate: 0.25,
      latencyMs: 50,
      port: 4999,
      host: '0.0.0.0',
      caDir: '/tmp/ca',
    });
  });

  it.each([
    ['SIM_VERIFY', 'sometimes'],
    ['SIM_ISSUE_SECONDS', '-1'],
    ['SIM_ISSUE_SECONDS', 'soon'],
    ['SIM_FAIL_RATE', '1.5'],
    ['SIM_FAIL_RATE', 'x'],
    ['SIM_LATENCY_MS', '1.5'],
    ['SIM_PORT', '70000'],
    ['SIM_PORT', 'http'],
    ['SIM_CERT_LIFETIME', '90'],
    ['SIM_CERT_LIFETIME', '6w'],
    ['SIM_CERT_LIFETIME', '0d'],
    ['SIM_CERT_LIFETIME', 'acme:6d'],
    ['SIM_CERT_LIFETIME', 'google:'],
  ])('rejects %s=%s naming the variable', (name, value) => {
    expect(() => loadSimulatorOptions({ [name]: value })).toThrow(new RegExp(name));
  });

  it('SIM_CERT_LIFETIME: one duration for every CA, or per CA (the others 90 days)', () => {
    const DAY = 86_400_000;
    expect(loadSimulatorOptions({}).certLifetimeMs).toEqual({
      google: 90 * DAY,
      letsencrypt: 90 * DAY,
      zerossl: 90 * DAY,
    });
    expect(loadSimulatorOptions({ SIM_CERT_LIFETIME: '45m' }).certLifetimeMs).toEqual({
      google: 45 * 60_000,
      letsencrypt: 45 * 60_000,
      zerossl: 45 * 60_000,
    });
    expect(loadSimulatorOptions({ SIM_CERT_LIFETIME: 'google:90d, letsencrypt:6d' }).certLifetimeMs).toEqual({
      google: 90 * DAY,
      letsencrypt: 6 * DAY,
      zerossl: 90 * DAY,
    });
    expect(loadSimulatorOptions({ SIM_CERT_LIFETIME: '90s,zerossl:12h' }).certLifetimeMs).toEqual({
      google: 90_000,
      letsencrypt: 90_000,
      zerossl: 12 * 3_600_000,
    });
    expect(() => loadSimulatorOptions({ SIM_CERT_LIFETIME: 'letsencrypt:6' })).toThrow(
      /SIM_CERT_LIFETIME: expected a duration such as 90d/,
    );
  });

  it('never echoes the API keys in an error', () => {
    // SIM_API_KEYS has no invalid form, but a bad neighbour must not leak it either.
    let message = '';
    try {
      loadSimulatorOptions({ SIM_API_KEYS: 'secret-key', SIM_PORT: 'x' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('SIM_PORT');
    expect(message).not.toContain('secret-key');
  });

  it('createSimulator rejects an out-of-range option naming it', () => {
    expect(() => createSimulator({ failRate: 2 })).toThrow(/failRate/);
    expect(() => createSimulator({ issueSeconds: -1 })).toThrow(/issueSeconds/);
    expect(() => createSimulator({ callbackRetry: { attempts: 0 } })).toThrow(/callbackRetry\.attempts/);
  });
});
