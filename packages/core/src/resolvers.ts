import { isIP } from 'node:net';

/**
 * Parses `DNS_RESOLVERS`: comma-separated `ip`, `ip:port`, `[ipv6]:port` or a bare IPv6 address.
 * Throws naming the bad entry; never guesses (a host name is refused: a resolver must be an address).
 */
export function parseResolvers(value: string | readonly string[] | undefined): string[] {
  const entries = (typeof value === 'string' ? value.split(',') : (value ?? []))
    .map((s) => s.trim())
    .filter(Boolean);
  return entries.map((entry) => {
    let host = entry;
    let port = 53;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    if (bracketed) {
      host = bracketed[1]!;
      if (bracketed[2]) port = Number(bracketed[2]);
    } else if (isIP(entry) === 0 && entry.includes(':') && entry.indexOf(':') === entry.lastIndexOf(':')) {
      const [h, p] = entry.split(':');
      host = h!;
      port = /^\d+$/.test(p!) ? Number(p) : Number.NaN;
    }
    const family = isIP(host);
    if (family === 0) throw new Error(`DNS resolver "${entry}" is not an IP address (ip or ip:port)`);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new Error(`DNS resolver "${entry}" has an invalid port`);
    return family === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  });
}
