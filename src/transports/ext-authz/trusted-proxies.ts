/**
 * The addresses whose X-Forwarded-Method/-Uri (or X-Original-*) forward-auth believes (SPEC §7).
 * Anything else that sends those headers is refused, which is what closes the spoofed
 * X-Forwarded-Uri bypass that hit oauth2-proxy. The matcher is the one DPoP's trusted_proxies use.
 */
import { compileAddressList, type AddressList } from '../../core/address-list.ts';
import { StartupError } from '../../errors.ts';

const KEY = 'ext_authz.forward_auth.trusted_proxies';

export type TrustedProxies = AddressList;

/** `entries`: CIDRs (`10.0.0.0/8`, `::1/128`) or single addresses; a bad one stops startup naming its key. */
export function compileTrustedProxies(entries: readonly string[]): TrustedProxies {
  const list = compileAddressList(entries);
  if (Array.isArray(list)) throw new StartupError(list.map((p) => `${KEY}${p}`).join('\n'));
  return list;
}
