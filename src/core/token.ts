/**
 * First-time verification of a grant token (the cache-miss path). Cheap structural checks come
 * before any crypto, so garbage costs almost nothing; jose does all JWS parsing and signature
 * work, and its throws are caught here and only here, turned into reasons.
 */
import { createHash } from 'node:crypto';
import { compactVerify, decodeJwt, decodeProtectedHeader, errors, type JWSHeaderParameters, type JWTPayload } from 'jose';
import { checkClaims, checkTime } from './claims.ts';
import type { DenyReason } from './decision.ts';
import { compileGrants } from './grant.ts';
import { hasDuplicateKeys, segmentText } from './json-duplicates.ts';
import type { GatePolicy, IssuerPolicy } from './policy.ts';
import { normalizeTyp } from './policy.ts';
import { checkStatusClaim } from './status-list.ts';
import type { VerifiedToken } from './verified-token.ts';

export type VerifyOutcome = VerifiedToken | DenyReason | 'keys_unavailable' | 'keys_stale';

/** Three non-empty base64url parts: anything else is refused before jose sees it. */
export function looksLikeCompactJws(token: string): boolean {
  let dots = 0;
  let partLen = 0;
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (c === 0x2e) {
      if (partLen === 0) return false;
      dots++;
      partLen = 0;
      continue;
    }
    // A-Z a-z 0-9 - _
    if (!((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f)) return false;
    partLen++;
  }
  return dots === 2 && partLen > 0;
}

/**
 * Synchronous for every refusal that needs no key material (malformed, unknown issuer, alg, typ,
 * keys not ready, unknown kid of a file-backed issuer), so attack traffic costs no promise; the
 * signature check (and a remote issuer's unknown-kid refetch) returns a promise.
 */
export function verifyToken(token: string, policy: GatePolicy, nowMs: number): VerifyOutcome | Promise<VerifyOutcome> {
  if (token.length > policy.maxTokenBytes) return 'token_too_large';
  if (!looksLikeCompactJws(token)) return 'malformed_token';

  let header: JWSHeaderParameters;
  let payload: JWTPayload;
  try {
    header = decodeProtectedHeader(token) as JWSHeaderParameters;
    payload = decodeJwt(token);
  } catch {
    return 'malformed_token';
  }
  const dot1 = token.indexOf('.');
  const dot2 = token.indexOf('.', dot1 + 1);
  if (hasDuplicateKeys(segmentText(token.slice(0, dot1)), header) || hasDuplicateKeys(segmentText(token.slice(dot1 + 1, dot2)), payload)) {
    return 'malformed_token';
  }

  const alg = header.alg;
  if (typeof alg !== 'string') return 'malformed_token';
  if (header.crit !== undefined) return 'unsupported_crit'; // jitgate understands no extension
  if (header.kid !== undefined && (typeof header.kid !== 'string' || header.kid === '')) return 'malformed_token';

  if (typeof payload.iss !== 'string') return 'invalid_claims';
  const issuer = policy.issuers.get(payload.iss);
  if (issuer === undefined) return 'unknown_issuer';
  if (!issuer.algorithms.has(alg)) return 'alg_not_allowed';
  if (issuer.typ !== undefined && (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== issuer.typ)) return 'wrong_typ';

  const keyState = issuer.keys.state(nowMs);
  if (keyState === 'loading') return 'keys_unavailable';
  if (keyState === 'stale') return 'keys_stale';

  const entry = issuer.keys.resolve(header.kid, alg);
  if (entry instanceof Promise) return entry.then((e) => verifyWith(e, token, alg, payload, issuer, policy, nowMs));
  return verifyWith(entry, token, alg, payload, issuer, policy, nowMs);
}

function verifyWith(
  entry: VerifiedToken['key'] | undefined,
  token: string,
  alg: string,
  payload: JWTPayload,
  issuer: IssuerPolicy,
  policy: GatePolicy,
  nowMs: number,
): VerifyOutcome | Promise<VerifyOutcome> {
  const key = entry?.keys.get(alg);
  if (entry === undefined || key === undefined) return 'unknown_key';
  return compactVerify(token, key, { algorithms: [alg] }).then(() => checkVerified(token, payload, issuer, policy, nowMs, entry), joseReason);
}

/** RFC 9449 §4.2 `ath`: base64url of the SHA-256 of the access token's ASCII text. */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

function checkVerified(
  token: string,
  payload: JWTPayload,
  issuer: IssuerPolicy,
  policy: GatePolicy,
  nowMs: number,
  key: VerifiedToken['key'],
): VerifyOutcome {
  const claims = checkClaims(payload, issuer, policy.audience);
  if (typeof claims === 'string') return claims;
  const late = checkTime(claims, nowMs / 1000, issuer.toleranceSec);
  if (late !== undefined) return late;

  const grants = compileGrants(payload.authorization_details, policy.grant);
  if (grants === null) return 'invalid_grant';
  const status = checkStatusClaim(payload.status, issuer.statusList);
  if (typeof status === 'string') return status;

  const names = policy.identity;
  const identity: [string, string][] = [
    [names.subject, claims.sub],
    [names.tokenId, claims.jti],
    [names.issuer, issuer.issuer],
  ];
  const unset: string[] = [];
  if (claims.txn !== undefined) identity.push([names.txn, claims.txn]);
  else unset.push(names.txn);
  if (claims.actor !== undefined) identity.push([names.actor, claims.actor]);
  else unset.push(names.actor);

  return Object.freeze({
    iss: issuer.issuer,
    sub: claims.sub,
    jti: claims.jti,
    txn: claims.txn,
    act: claims.act,
    actor: claims.actor,
    iat: claims.iat,
    exp: claims.exp,
    nbf: claims.nbf,
    toleranceSec: issuer.toleranceSec,
    grants: Object.freeze(grants),
    identity: Object.freeze(identity),
    identityUnset: Object.freeze(unset),
    cnfJkt: claims.cnfJkt,
    cnfX5t: claims.cnfX5t,
    // Hashed once per token, not per request: every proof for this token must carry it.
    ath: claims.cnfJkt === undefined ? undefined : accessTokenHash(token),
    keys: issuer.keys,
    key,
    status,
  });
}

/** The one place jose's exceptions become reasons. */
function joseReason(err: unknown): DenyReason {
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad_signature';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'alg_not_allowed';
  if (err instanceof errors.JOSENotSupported) return 'unsupported_crit';
  return 'malformed_token';
}
