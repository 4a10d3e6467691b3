/**
 * Claim rules beyond the signature (SPEC §1): required claims and their types, audience,
 * lifetime cap, time windows, and header-safety of values that become identity headers.
 */
import type { JWTPayload } from 'jose';
import { isThumbprint } from './cert-binding.ts';
import type { DenyReason } from './decision.ts';
import type { IssuerPolicy } from './policy.ts';

export interface CheckedClaims {
  readonly sub: string;
  readonly jti: string;
  readonly iat: number;
  readonly exp: number;
  readonly nbf: number | undefined;
  readonly txn: string | undefined;
  readonly act: unknown;
  readonly actor: string | undefined;
  readonly cnfJkt: string | undefined;
  readonly cnfX5t?: string | undefined;
}

/** Visible ASCII and space only: these values are copied into upstream request headers. */
function headerSafe(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/** An identifier claim (sub, jti, txn, act.sub) as a gate accepts it: 1–1024 visible ASCII or spaces, not at either end. */
export function nonEmptyHeaderSafe(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 1024 && headerSafe(v) && v.trim() === v;
}

function isNumericDate(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** Static checks that hold for the token's whole life (cached with it). */
export function checkClaims(p: JWTPayload, issuer: IssuerPolicy, audience: string): CheckedClaims | DenyReason {
  if (!nonEmptyHeaderSafe(p.sub) || !nonEmptyHeaderSafe(p.jti) || !isNumericDate(p.exp) || !isNumericDate(p.iat)) {
    return 'invalid_claims';
  }
  if (p.nbf !== undefined && !isNumericDate(p.nbf)) return 'invalid_claims';
  if (p.txn !== undefined && !nonEmptyHeaderSafe(p.txn)) return 'invalid_claims';

  let actor: string | undefined;
  if (p.act !== undefined) {
    const act = p.act as { sub?: unknown };
    if (typeof act !== 'object' || act === null || Array.isArray(act) || !nonEmptyHeaderSafe(act.sub)) return 'invalid_claims';
    actor = act.sub;
  }

  const aud = p.aud;
  if (typeof aud === 'string') {
    if (aud !== audience) return 'wrong_audience';
  } else if (Array.isArray(aud)) {
    if (!aud.every((a) => typeof a === 'string')) return 'invalid_claims';
    if (!aud.includes(audience)) return 'wrong_audience';
  } else {
    return aud === undefined ? 'wrong_audience' : 'invalid_claims';
  }

  // Long-lived tokens are standing privilege, whatever their signature says.
  if (!(p.exp - p.iat <= issuer.maxTtlSec)) return 'lifetime_exceeded';

  let cnfJkt: string | undefined;
  let cnfX5t: string | undefined;
  if (p.cnf !== undefined) {
    const cnf = p.cnf as { jkt?: unknown };
    if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)) return 'invalid_claims';
    // RFC 8705 §3.1: a certificate-bound token; it may also be DPoP-bound (both are then enforced).
    const x5t = Object.hasOwn(cnf, 'x5t#S256') ? (cnf as Record<string, unknown>)['x5t#S256'] : undefined;
    if (x5t !== undefined) {
      if (!isThumbprint(x5t)) return 'cert_binding_malformed';
      cnfX5t = x5t;
    }
    if (cnf.jkt !== undefined || cnfX5t === undefined) {
      if (typeof cnf.jkt !== 'string' || cnf.jkt === '') return 'invalid_claims';
      cnfJkt = cnf.jkt;
    }
  }

  return { sub: p.sub, jti: p.jti, iat: p.iat, exp: p.exp, nbf: p.nbf, txn: p.txn as string | undefined, act: p.act, actor, cnfJkt, cnfX5t };
}

/** Time rules, re-checked on every request (the cache holds tokens until they expire). */
export function checkTime(c: { iat: number; exp: number; nbf: number | undefined }, nowSec: number, toleranceSec: number): DenyReason | undefined {
  if (nowSec >= c.exp + toleranceSec) return 'expired';
  if (c.nbf !== undefined && nowSec < c.nbf - toleranceSec) return 'not_yet_valid';
  if (c.iat > nowSec + toleranceSec) return 'issued_in_future';
  return undefined;
}
