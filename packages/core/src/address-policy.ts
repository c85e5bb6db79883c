import { lookup as dnsLookup } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Where a tenant-configured URL (a webhook) may make certq connect: globally reachable unicast addresses
 * only, by IANA's special-purpose address registries, plus certq's own stricter rules below.
 *
 * The API checks a URL when it is set (resolving its name); the worker checks again at connect time,
 * on the addresses the name resolves to then (see `filteredLookup`), so DNS rebinding gains nothing.
 */

/**
 * The snapshot of IANA's IPv4 and IPv6 Special-Purpose Address Registries the tables below are derived
 * from (iana-ipv4-special-registry, iana-ipv6-special-registry; vendored as CSV in test/reference/iana,
 * whose test checks these tables against them). Update the CSVs and the tables together.
 */
export const SPECIAL_PURPOSE_REGISTRY_SNAPSHOT = '2026-07-18';

/**
 * Every registry block whose "Globally Reachable" is not True (False, N/A, or a terminated entry).
 * A more specific True entry inside one of them (192.0.0.9/32 PCP anycast, 2001:1::1/128, AMT, ORCHIDv2…)
 * stays refused with its block: no webhook lives there, and one rule per block is easier to trust.
 */
const REGISTRY_NOT_GLOBAL: readonly (readonly [string, number])[] = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private-use
  ['100.64.0.0', 10], // shared address space (CGNAT)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link local (cloud metadata lives here)
  ['172.16.0.0', 12], // private-use
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation (TEST-NET-1)
  ['192.88.99.0', 24], // deprecated 6to4 relay anycast, and 6a44-relay 192.88.99.2
  ['192.168.0.0', 16], // private-use
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation (TEST-NET-2)
  ['203.0.113.0', 24], // documentation (TEST-NET-3)
  ['240.0.0.0', 4], // reserved, and 255.255.255.255 limited broadcast
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['64:ff9b:1::', 48], // IPv4-IPv6 translation, local use (RFC 8215): a local translator into internal IPv4
  ['100::', 64], // discard-only
  ['100:0:0:1::', 64], // dummy IPv6 prefix (RFC 9780)
  ['2001::', 23], // IETF protocol assignments (Teredo N/A, benchmarking, deprecated ORCHID…)
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4: N/A, it reaches whatever relay and IPv4 host it encodes
  ['3fff::', 20], // documentation (RFC 9637)
  ['5f00::', 16], // segment routing (SRv6) SIDs (RFC 9602)
  ['fc00::', 7], // unique-local
  ['fe80::', 10], // link-local unicast
];

/**
 * certq's rules on top of the registries: multicast is in neither special-purpose registry (it has its
 * own) and is never a webhook; the deprecated site-local block still routes inside some networks.
 * IPv4-mapped (`::ffff:0:0/96`, registry: not globally reachable) and IPv4-compatible addresses are how a
 * dual-stack socket writes an IPv4 destination, and the NAT64 well-known prefix `64:ff9b::/96` (registry:
 * globally reachable) translates to one: all three are judged by the IPv4 address they carry.
 */
const CERTQ_NOT_GLOBAL: readonly (readonly [string, number])[] = [
  ['224.0.0.0', 4], // multicast
  ['ff00::', 8], // multicast
  ['fec0::', 10], // site-local (deprecated)
];

const v4 = new BlockList();
const v6 = new BlockList();
for (const [net, prefix] of [...REGISTRY_NOT_GLOBAL, ...CERTQ_NOT_GLOBAL]) {
  if (isIP(net) === 4) v4.addSubnet(net, prefix, 'ipv4');
  else v6.addSubnet(net, prefix, 'ipv6');
}

/** The IPv4 address an IPv6 address carries, for the forms judged by it (see `CERTQ_NOT_GLOBAL`). */
function embeddedIPv4(address: string): string | undefined {
  const lower = address.toLowerCase();
  // Dotted tail: ::ffff:1.2.3.4, ::1.2.3.4, 64:ff9b::1.2.3.4
  const dotted = /^(?:::ffff:|::|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted) return dotted[1];
  const groups = expandIPv6(lower);
  if (!groups) return undefined;
  const toV4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  const zeros = (from: number, to: number) => groups.slice(from, to).every((g) => g === 0);
  if (zeros(0, 5) && groups[5] === 0xffff) return toV4(groups[6]!, groups[7]!); // IPv4-mapped
  if (zeros(0, 6) && (groups[6] !== 0 || groups[7]! > 1)) return toV4(groups[6]!, groups[7]!); // IPv4-compatible
  if (groups[0] === 0x64 && groups[1] === 0xff9b && zeros(2, 6)) return toV4(groups[6]!, groups[7]!); // NAT64
  return undefined;
}

function expandIPv6(address: string): number[] | undefined {
  let text = address.split('%')[0]!;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -dotted[1]!.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string) => (part ? part.split(':').map((g) => Number.parseInt(g, 16)) : []);
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const fill = tail === undefined ? 0 : 8 - left.length - right.length;
  const groups = [...left, ...new Array(Math.max(0, fill)).fill(0), ...right];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff)
    ? groups
    : undefined;
}

/** Why an address is refused, in words fit for a tenant (no address echoed back), or undefined if public. */
export function nonPublicReason(address: string): string | undefined {
  const family = isIP(address);
  if (family === 4) return v4.check(address, 'ipv4') ? 'not a public address' : undefined;
  if (family === 6) {
    const inner = embeddedIPv4(address);
    if (inner !== undefined) return nonPublicReason(inner);
    return v6.check(address.split('%')[0]!, 'ipv6') ? 'not a public address' : undefined;
  }
  return 'not an IP address';
}

export function isPublicAddress(address: string): boolean {
  return nonPublicReason(address) === undefined;
}

export interface LookupAddress {
  address: string;
  family: number;
}
/** `dns.lookup(name, { all: true })` as a promise; replaceable in tests (no test may reach real DNS). */
export type ResolveAll = (hostname: string) => Promise<LookupAddress[]>;

export const systemResolveAll: ResolveAll = (hostname) =>
  new Promise((resolve, reject) =>
    dnsLookup(hostname, { all: true, verbatim: true }, (error, addresses) =>
      error ? reject(error) : resolve(addresses),
    ),
  );

export interface AddressPolicy {
  /** `WEBHOOK_ALLOW_PRIVATE=true`: development only, everything is allowed. */
  allowPrivate: boolean;
  resolveAll?: ResolveAll;
}

/** An address refused by the policy; the message never names the address or port. */
export class BlockedAddressError extends Error {
  readonly code = 'EADDRBLOCKED';
  constructor(message = 'the webhook host resolves to an address that is not public') {
    super(message);
    this.name = 'BlockedAddressError';
  }
}

/**
 * Whether a webhook URL may be stored: http(s), no credentials, and its host (an IP literal, or every
 * address its name resolves to now) public. Returns a reason to refuse, or undefined.
 */
export async function webhookUrlProblem(raw: string, policy: AddressPolicy): Promise<string | undefined> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a valid URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be http or https';
  if (url.username || url.password) return 'must not carry credentials';
  if (policy.allowPrivate) return undefined;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) return nonPublicReason(host) ? 'the host is not a public address' : undefined;
  if (host === 'localhost' || host.endsWith('.localhost')) return 'the host is not a public address';
  let addresses: LookupAddress[];
  try {
    addresses = await (policy.resolveAll ?? systemResolveAll)(host);
  } catch {
    return 'the host name does not resolve';
  }
  if (addresses.length === 0) return 'the host name does not resolve';
  if (addresses.some((a) => !isPublicAddress(a.address)))
    return 'the host name resolves to an address that is not public';
  return undefined;
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for `net.connect`/`tls.connect` (and undici's `connect` options) that resolves as usual
 * and drops every non-public address; with none left the connection fails with BlockedAddressError.
 */
export function filteredLookup(policy: AddressPolicy) {
  const resolveAll = policy.resolveAll ?? systemResolveAll;
  return (
    hostname: string,
    options: { all?: boolean; family?: number | string },
    callback: LookupCallback,
  ) => {
    resolveAll(hostname).then(
      (addresses) => {
        const allowed = policy.allowPrivate ? addresses : addresses.filter((a) => isPublicAddress(a.address));
        const wanted =
          options.family === 4 || options.family === 6
            ? allowed.filter((a) => a.family === options.family)
            : allowed;
        if (wanted.length === 0) return callback(new BlockedAddressError(), options.all ? [] : '', 0);
        if (options.all) return callback(null, wanted);
        callback(null, wanted[0]!.address, wanted[0]!.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, options.all ? [] : '', 0),
    );
  };
}
