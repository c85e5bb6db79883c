import { Resolver } from 'node:dns/promises';
import { parseResolvers } from '@certq/core';
import type { SimulatorOptions } from './config';
import { dvRecord, isUnderInvalid, normalizeName } from './domains';
import type { SimState } from './state';
import type { DvConfig } from './types';

/**
 * Whether a domain verifies, per `verify`:
 * - `auto`: every domain except under `.invalid`;
 * - `records`: the CNAME set through `/_sim/dns` matches;
 * - `dns`: `CNAME <host>.<registered domain>` resolves, through `dnsResolver`, to the handed-out hostValue,
 *   as httpsok checks public DNS. A lookup that fails (NXDOMAIN, SERVFAIL, timeout) is simply "not valid":
 *   the provider says no more than `valid: false` either.
 */
export interface DnsCheck {
  dvConfig(apiKey: string, domain: string): Promise<DvConfig>;
  close(): void;
}

export function createDnsCheck(options: SimulatorOptions, state: SimState): DnsCheck {
  let resolver: Resolver | undefined;
  if (options.verify === 'dns') {
    resolver = new Resolver({ timeout: 2_000, tries: 1 });
    resolver.setServers(parseResolvers(options.dnsResolver));
  }

  async function resolvesTo(fqdn: string, expected: string): Promise<boolean> {
    try {
      const [target] = await resolver!.resolveCname(fqdn);
      return target !== undefined && normalizeName(target) === expected;
    } catch {
      return false;
    }
  }

  return {
    async dvConfig(apiKey, domain) {
      const record = dvRecord(apiKey, domain);
      let valid: boolean;
      if (options.verify === 'auto') valid = !isUnderInvalid(domain);
      else if (options.verify === 'records') valid = state.dns.get(record.fqdn) === record.hostValue;
      else valid = await resolvesTo(record.fqdn, record.hostValue);
      return { domain, host: record.host, hostValue: record.hostValue, valid };
    },
    close() {
      resolver?.cancel();
    },
  };
}
