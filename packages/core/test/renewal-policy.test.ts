import { describe, expect, it } from 'vitest';
import {
  isExpiring,
  lifetimeShareLeft,
  loadConfig,
  RENEWAL_SPREAD_MAX_MS,
  renewalSpreadMs,
  renewalTime,
  renewalWindowStart,
} from '../src/index';

const DAY = 86_400_000;
const issued = new Date('2026-01-01T00:00:00Z');
const lasting = (days: number) => ({ notBefore: issued, notAfter: new Date(issued.getTime() + days * DAY) });
/** Days after notBefore. */
const at = (d: Date) => (d.getTime() - issued.getTime()) / DAY;

describe('renewal policy', () => {
  it('starts renewal with a third of the lifetime left, half under 10 days', () => {
    expect(at(renewalWindowStart(lasting(90)))).toBeCloseTo(60);
    expect(at(renewalWindowStart(lasting(45)))).toBeCloseTo(30);
    expect(at(renewalWindowStart(lasting(10)))).toBeCloseTo(20 / 3);
    expect(at(renewalWindowStart(lasting(6)))).toBeCloseTo(3);
    expect(at(renewalWindowStart(lasting(45 / 1440)))).toBeCloseTo(45 / 1440 / 2);
  });

  it('RENEW_BEFORE_DAYS moves renewal earlier, never before half the lifetime', () => {
    expect(at(renewalWindowStart(lasting(90), { renewBeforeDays: 40 }))).toBeCloseTo(50);
    // 30 days before expiry would be day 15 of 45: held at half.
    expect(at(renewalWindowStart(lasting(45), { renewBeforeDays: 30 }))).toBeCloseTo(22.5);
    expect(at(renewalWindowStart(lasting(6), { renewBeforeDays: 30 }))).toBeCloseTo(3);
    // A cap later than the ratio changes nothing: the ratio is the latest start.
    expect(at(renewalWindowStart(lasting(90), { renewBeforeDays: 7 }))).toBeCloseTo(60);
  });

  it('spreads renewal times over the first tenth of the window, at most two days', () => {
    expect(renewalSpreadMs(lasting(6), renewalWindowStart(lasting(6)))).toBeCloseTo(0.3 * DAY);
    expect(renewalSpreadMs(lasting(90), renewalWindowStart(lasting(90)))).toBe(RENEWAL_SPREAD_MAX_MS);
    expect(at(renewalTime(lasting(90), { random: () => 0 }))).toBeCloseTo(60);
    expect(at(renewalTime(lasting(90), { random: () => 0.999999 }))).toBeCloseTo(62);
    expect(at(renewalTime(lasting(6), { random: () => 0.5 }))).toBeCloseTo(3.15);
    const times = Array.from({ length: 200 }, () => at(renewalTime(lasting(45))));
    expect(Math.min(...times)).toBeGreaterThanOrEqual(30);
    expect(Math.max(...times)).toBeLessThan(31.5);
    expect(new Set(times.map((t) => Math.floor(t * 24))).size).toBeGreaterThan(10);
  });

  it('calls a certificate expiring with less than a sixth of its lifetime left', () => {
    const six = lasting(6);
    expect(lifetimeShareLeft(six, new Date(issued.getTime() + 3 * DAY))).toBeCloseTo(0.5);
    expect(isExpiring(six, new Date(issued.getTime() + 4.9 * DAY))).toBe(false);
    expect(isExpiring(six, new Date(issued.getTime() + 5.1 * DAY))).toBe(true);
    expect(isExpiring(lasting(90), new Date(issued.getTime() + 80 * DAY))).toBe(true);
    expect(isExpiring(lasting(90), new Date(issued.getTime() + 70 * DAY))).toBe(false);
  });

  it('RENEW_BEFORE_DAYS is optional', () => {
    expect(loadConfig({}).RENEW_BEFORE_DAYS).toBeUndefined();
    expect(loadConfig({ RENEW_BEFORE_DAYS: '30' }).RENEW_BEFORE_DAYS).toBe(30);
    expect(() => loadConfig({ RENEW_BEFORE_DAYS: '0' })).toThrow(/RENEW_BEFORE_DAYS/);
  });
});
