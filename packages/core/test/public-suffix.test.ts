import { describe, expect, it } from 'vitest';
import { isPublicSuffix, registeredDomain, subdomainOf } from '../src';

describe('public suffix list (ICANN section)', () => {
  it('finds the registered domain, not "the last two labels"', () => {
    expect(registeredDomain('a.example.co.uk')).toBe('example.co.uk');
    expect(registeredDomain('*.sub.example.com')).toBe('example.com');
    expect(registeredDomain('Shop.Example.COM.')).toBe('example.com');
    expect(registeredDomain('xn--bcher-kva.de')).toBe('xn--bcher-kva.de');
    expect(registeredDomain('a.b.test')).toBe('b.test');
    expect(registeredDomain('co.uk')).toBeNull();
  });

  it('ignores private suffixes: github.io is a registered domain here', () => {
    expect(registeredDomain('foo.github.io')).toBe('github.io');
    expect(isPublicSuffix('github.io')).toBe(false);
  });

  it('tells public suffixes, for refusing *.co.uk', () => {
    expect(isPublicSuffix('*.co.uk')).toBe(true);
    expect(isPublicSuffix('com')).toBe(true);
    expect(isPublicSuffix('example.co.uk')).toBe(false);
  });

  it('gives the labels left of the registered domain', () => {
    expect(subdomainOf('*.a.b.example.co.uk')).toBe('a.b');
    expect(subdomainOf('example.com')).toBe('');
    expect(subdomainOf('co.uk')).toBeNull();
  });
});
