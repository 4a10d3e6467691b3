/**
 * The addresses whose X-Forwarded-Method/-Uri (or X-Original-*) forward-auth believes (SPEC §7).
 * Compiled once at startup into a node:net BlockList; a bad entry stops startup naming its key.
 * Anything else that sends those headers is refused, which is what closes the spoofed
 * X-Forwarded-Uri bypass that hit oauth2-proxy.
 */
import { BlockList, isIP } from 'node:net';
import { StartupError } from '../../errors.ts';

const KEY = 'ext_authz.forward_auth.trusted_proxies';

export interface TrustedProxies {
  /** Whether a TCP peer address (as in socket.remoteAddress) is a configured proxy. */
  has(address: string | undefined): boolean;
}

/** `entries`: CIDRs (`10.0.0.0/8`, `::1/128`) or single addresses (`127.0.0.1`). */
export function compileTrustedProxies(entries: readonly string[]): TrustedProxies {
  const list = new BlockList();
  entries.forEach((entry, i) => {
    const slash = entry.indexOf('/');
    const addr = slash === -1 ? entry : entry.slice(0, slash);
    const family = isIP(addr);
    if (family === 0) throw new StartupError(`${KEY}[${i}]: ${JSON.stringify(entry)} is not an IP address or CIDR such as 127.0.0.1/32`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (slash === -1) {
      list.addAddress(addr, type);
      return;
    }
    const bitsText = entry.slice(slash + 1);
    const bits = /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : NaN;
    if (!(bits >= 0 && bits <= (family === 4 ? 32 : 128))) {
      throw new StartupError(`${KEY}[${i}]: ${JSON.stringify(entry)} has an invalid prefix length (0-${family === 4 ? 32 : 128})`);
    }
    list.addSubnet(addr, bits, type);
  });
  return Object.freeze({
    has(address: string | undefined): boolean {
      if (address === undefined) return false;
      // IPv4-mapped IPv6 (a dual-stack listener): judge the IPv4 address, as the operator wrote it.
      if (address.startsWith('::ffff:') && isIP(address.slice(7)) === 4) return list.check(address.slice(7), 'ipv4');
      const family = isIP(address);
      if (family === 0) return false;
      return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
    },
  });
}
