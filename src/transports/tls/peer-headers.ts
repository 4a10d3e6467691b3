/**
 * The identity headers that describe the connection rather than the token (SPEC §11), under the
 * same prefix as the others (SPEC §4) and stripped from inbound requests the same way:
 *   `<prefix>client-cert-sha256`  the verified client certificate's thumbprint, base64url SHA-256
 *                                 of the DER (the `x5t#S256` form, RFC 8705 §3.1)
 *   `<prefix>spiffe-id`           its URI SAN, when it has exactly one and it is a valid SPIFFE ID
 * They are set per request (one token may arrive over several connections), so they are not part
 * of the token's cached identity list.
 */
import type { ClientCert } from '../../core/cert-binding.ts';

export interface PeerHeaderNames {
  readonly certSha256: string;
  readonly spiffeId: string;
  readonly all: readonly string[];
  /** Names not set for a request without a certificate / with a certificate but no SPIFFE ID / with both. */
  readonly unsetNone: readonly string[];
  readonly unsetSpiffe: readonly string[];
  readonly unsetAll: readonly string[];
}

export function peerHeaderNames(prefix: string): PeerHeaderNames {
  const certSha256 = `${prefix}client-cert-sha256`;
  const spiffeId = `${prefix}spiffe-id`;
  const all = Object.freeze([certSha256, spiffeId]);
  return Object.freeze({ certSha256, spiffeId, all, unsetAll: all, unsetSpiffe: Object.freeze([spiffeId]), unsetNone: Object.freeze([]) });
}

/** Appends `[name, value]` pairs for what the certificate tells, to a flat header list. */
export function pushPeerHeaders(out: string[], names: PeerHeaderNames, cert: ClientCert | undefined): void {
  if (cert === undefined) return;
  if (cert.sha256 !== undefined) out.push(names.certSha256, cert.sha256);
  if (cert.spiffeId !== undefined) out.push(names.spiffeId, cert.spiffeId);
}

/** The peer header names this request does not set (Envoy must remove them). */
export function unsetPeerHeaders(names: PeerHeaderNames, cert: ClientCert | undefined): readonly string[] {
  if (cert === undefined) return names.unsetAll;
  if (cert.sha256 === undefined) return cert.spiffeId === undefined ? names.unsetAll : [names.certSha256];
  return cert.spiffeId === undefined ? names.unsetSpiffe : names.unsetNone;
}
