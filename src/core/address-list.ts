/**
 * A compiled list of peer addresses and CIDRs (node:net BlockList), for "believe X-Forwarded-* only
 * from these proxies" rules. Pure: compiled once from config, then a membership test per lookup.
 */
import { BlockList, isIP } from 'node:net';

export interface AddressList {
  /** Whether a TCP peer address (as in socket.remoteAddress) is listed; undefined never is. */
  has(address: string | undefined): boolean;
  readonly size: number;
}

export const EMPTY_ADDRESS_LIST: AddressList = Object.freeze({ has: () => false, size: 0 });

/**
 * `entries`: CIDRs (`10.0.0.0/8`, `::1/128`) or single addresses. Returns the list, or one problem
 * per bad entry (`"[2]: … is not an IP address or CIDR"`), for the caller to prefix with its key.
 */
export function compileAddressList(entries: readonly string[]): AddressList | string[] {
  if (entries.length === 0) return EMPTY_ADDRESS_LIST;
  const list = new BlockList();
  const problems: string[] = [];
  entries.forEach((entry, i) => {
    const slash = entry.indexOf('/');
    const addr = slash === -1 ? entry : entry.slice(0, slash);
    const family = isIP(addr);
    if (family === 0) {
      problems.push(`[${i}]: ${JSON.stringify(entry)} is not an IP address or CIDR such as 10.0.0.0/8`);
      return;
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (slash === -1) {
      list.addAddress(addr, type);
      return;
    }
    const bitsText = entry.slice(slash + 1);
    const bits = /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : NaN;
    const max = family === 4 ? 32 : 128;
    if (!(bits >= 0 && bits <= max)) problems.push(`[${i}]: ${JSON.stringify(entry)} has an invalid prefix length (0-${max})`);
    else list.addSubnet(addr, bits, type);
  });
  if (problems.length > 0) return problems;
  return Object.freeze({
    size: entries.length,
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
