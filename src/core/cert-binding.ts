/**
 * Workload identity from the connection (SPEC §11): RFC 8705 §3 certificate-bound tokens and the
 * SPIFFE subject rule. The transport hands the core the client certificate it verified (TLS
 * listener) or that a trusted proxy reported (Envoy's XFCC / `source.certificate`), already
 * reduced to a thumbprint string, so a cached token's check is two string comparisons.
 */
import { canonicalBase64url } from './base64url.ts';
import type { DenyReason } from './decision.ts';
import type { VerifiedToken } from './verified-token.ts';
import type { ClientCert } from './client-cert.ts';

export type { ClientCert };

export interface CertRules {
  /** The token's issuer refuses unbound tokens (`issuers[].require_cert_binding`). */
  readonly requireBinding: boolean;
  /** `service.spiffe_subject`: the certificate's SPIFFE ID must equal `sub`. */
  readonly spiffeSubject: boolean;
}

/**
 * `x5t#S256` as a token carries it: exactly 32 bytes in unpadded base64url, canonical (re-encoding
 * gives the same text), so that comparing strings is comparing thumbprints.
 */
export function isThumbprint(v: unknown): v is string {
  return typeof v === 'string' && v.length === 43 && canonicalBase64url(v)?.length === 32;
}

/**
 * The connection-level checks for a verified token; undefined when they pass. Runs on every request,
 * cache hit or not (the binding is a property of the connection, not of the token).
 */
export function checkCertBinding(t: VerifiedToken, cert: ClientCert | undefined, rules: CertRules, nowMs: number): DenyReason | undefined {
  const x5t = t.cnfX5t;
  if (x5t === undefined) {
    if (rules.requireBinding) return 'cert_binding_required';
    if (!rules.spiffeSubject) return undefined;
  }
  if (cert === undefined) return x5t !== undefined ? 'cert_required' : 'spiffe_id_missing';
  const invalid = outsideValidity(cert, nowMs);
  if (invalid !== undefined) return invalid;
  if (x5t !== undefined) {
    if (cert.sha256 === undefined) return 'cert_required';
    if (cert.sha256 !== x5t) return 'cert_binding_mismatch';
  }
  if (rules.spiffeSubject) {
    if (cert.spiffeId === undefined) return 'spiffe_id_missing';
    if (cert.spiffeId !== t.sub) return 'spiffe_id_mismatch';
  }
  return undefined;
}

/**
 * A certificate is only evidence inside its validity window, checked on every request: the TLS
 * handshake checked it once, but a keep-alive connection or a session resumed from a ticket outlives
 * that, and a proxy-reported certificate (XFCC Cert=, source.certificate) was never checked by us.
 */
export function outsideValidity(cert: ClientCert, nowMs: number): 'client_cert_not_yet_valid' | 'client_cert_expired' | undefined {
  if (nowMs < cert.notBeforeMs) return 'client_cert_not_yet_valid';
  if (nowMs >= cert.notAfterMs) return 'client_cert_expired';
  return undefined;
}

/** The certificate an allow may name (identity headers, the audit line): none outside its validity window. */
export function validCertAt(cert: ClientCert | undefined, nowMs: number): ClientCert | undefined {
  return cert === undefined || outsideValidity(cert, nowMs) !== undefined ? undefined : cert;
}
