/**
 * What Envoy must change on the upstream request after an allow (SPEC §4, §7): the identity
 * headers jitgate sets, and the names it must remove — `authorization` (unless
 * headers.forward_authorization), `dpop`, every spelling of the method-override and URL-rewrite
 * headers (seen or not; override-headers.ts), every client-certificate header the proxy drops
 * (client-cert-headers.ts: RFC 9440 `Client-Cert`, `x-ssl-client-*`, XFCC…), every identity name this
 * token does not set (so a client cannot smuggle one past Envoy), and any other inbound header
 * carrying the identity prefix.
 *
 * Built once from config; per request it only concatenates when something is left to remove.
 */
import type { Allow } from '../../core/decision.ts';
import type { IdentityHeaderNames } from '../../core/policy.ts';
import type { Config } from '../../config/schema.ts';
import { OVERRIDE_SPELLINGS } from '../override-headers.ts';
import { CLIENT_CERT_HEADERS } from '../proxy/client-cert-headers.ts';
import { compileHeaderPolicy, ROUTING_OVERRIDES } from '../proxy/hop-headers.ts';
import { peerHeaderNames, unsetPeerHeaders, type PeerHeaderNames } from '../tls/peer-headers.ts';

export interface UpstreamHeaders {
  readonly identity: IdentityHeaderNames;
  /** The client-certificate identity headers (SPEC §11), set per request. */
  readonly peer: PeerHeaderNames;
  readonly prefix: string;
  /** Lower-case names to remove for this allow; `stray` are inbound prefix headers jitgate does not set. */
  removals(decision: Allow, stray: readonly string[]): readonly string[];
  /** The same list as Envoy's HTTP service expects it in `x-envoy-auth-headers-to-remove`. */
  removalHeader(decision: Allow, stray: readonly string[]): string;
  /**
   * Whether an inbound header (lower case) must not reach the backend although jitgate does not set
   * it: the identity prefix (also spelled with `_`), routing overrides some backends obey instead of
   * the path, and the `_` spelling of any header the proxy owns (its HeaderPolicy.owned) — the same
   * headers the proxy drops.
   */
  isStray(lowerName: string): boolean;
}

export function compileUpstreamHeaders(config: Config, identity: IdentityHeaderNames): UpstreamHeaders {
  const base: string[] = [];
  if (!config.headers.forward_authorization) base.push('authorization');
  base.push('dpop');
  // Every spelling, seen or not: Envoy's allowed_headers may hide them from jitgate, and the
  // backend behind Envoy must never act on them (issue 21 item 2).
  base.push(...OVERRIDE_SPELLINGS);
  // The backend learns a client certificate from the identity headers only, as behind the proxy
  // (SPEC §11); a review found a client's own `Client-Cert` passing Envoy to the backend.
  base.push(...CLIENT_CERT_HEADERS);
  const prefix = config.headers.prefix;
  const peer = peerHeaderNames(prefix);
  const publicList = Object.freeze([...base, ...identity.all, ...peer.all]);
  const publicHeader = publicList.join(', ');
  // The identity names jitgate sets or removes itself; any other prefixed name is a stray.
  const five = new Set([...identity.all, ...peer.all]);
  // One list of owned names for both transports, so the `_` rule cannot drift between them.
  const owned = compileHeaderPolicy(config).owned;

  const removals = (d: Allow, stray: readonly string[]): readonly string[] => {
    const unset = d.token === null ? identity.all : d.token.identityUnset;
    if (d.token === null && stray.length === 0 && d.clientCert === undefined) return publicList;
    return [...base, ...unset, ...unsetPeerHeaders(peer, d.clientCert), ...stray];
  };
  return Object.freeze({
    identity,
    peer,
    prefix,
    removals,
    removalHeader: (d: Allow, stray: readonly string[]) =>
      d.token === null && stray.length === 0 && d.clientCert === undefined ? publicHeader : removals(d, stray).join(', '),
    // CGI-style backends read `_` as `-` (CVE-2024-45614): `x_jit_actor` is an identity header too.
    isStray: (lowerName: string) => {
      const underscored = lowerName.includes('_');
      const dashed = underscored ? lowerName.replaceAll('_', '-') : lowerName;
      if (dashed.startsWith(prefix)) return !five.has(lowerName);
      if (ROUTING_OVERRIDES.has(dashed)) return true;
      return underscored && owned.has(dashed);
    },
  });
}
