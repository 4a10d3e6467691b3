/**
 * First-time verification of a grant token (the cache-miss path). Cheap structural checks come
 * before any crypto, so garbage costs almost nothing. The token is decoded once (jws-compact.ts)
 * and its signature checked by node:crypto (jws-signature.ts), synchronously or on the thread
 * pool (verify-mode.ts); jose stays the oracle both are tested against
 * (test/core/jws-differential.test.ts) and imports the keys.
 */
import { createHash } from 'node:crypto';
import type { JWTPayload } from 'jose';
import type { BadSignatureCache } from '../cache/bad-signatures.ts';
import type { KeyEntry } from '../keys/key-set.ts';
import { checkClaims, checkTime } from './claims.ts';
import type { DenyReason, TokenIds } from './decision.ts';
import { compileGrants } from './grant.ts';
import { parseCompactJws } from './jws-compact.ts';
import { signatureParams, verifyBatched, verifyPooled, verifySync } from './jws-signature.ts';
import type { GatePolicy, IssuerPolicy } from './policy.ts';
import { normalizeTyp } from './policy.ts';
import { checkStatusClaim } from './status-list.ts';
import type { VerifiedToken } from './verified-token.ts';
import type { VerifyMode } from './verify-mode.ts';

export { looksLikeCompactJws } from './jws-compact.ts';

export type VerifyOutcome = VerifiedToken | DenyReason | 'keys_unavailable' | 'keys_stale' | RefusedToken;

/**
 * A token whose signature verified but whose claims refuse it (expired, wrong audience, a bad
 * grant or status claim…): the reason, and who the token names for the audit line (SPEC §8). A
 * refusal before the signature check stays a bare reason: unverified claims name no one.
 */
export class RefusedToken {
  readonly reason: DenyReason;
  readonly ids: TokenIds;
  constructor(reason: DenyReason, ids: TokenIds) {
    this.reason = reason;
    this.ids = ids;
  }
}

/** The verified token, or undefined for every refusal (a reason or a RefusedToken). */
export function acceptedToken(outcome: VerifyOutcome): VerifiedToken | undefined {
  return typeof outcome === 'string' || outcome instanceof RefusedToken ? undefined : outcome;
}

/** How a miss is verified: where the signature check runs, and the memory of forged tokens. */
export interface VerifyOptions {
  readonly mode: VerifyMode;
  readonly badSignatures: BadSignatureCache | undefined;
}

const DEFAULT_OPTIONS: VerifyOptions = { mode: 'sync', badSignatures: undefined };

/**
 * Synchronous for every refusal and, in `sync` mode, for the signature check too; in `batch` and
 * `pool` mode the signature check (and a remote issuer's unknown-kid refetch) returns a promise.
 */
export function verifyToken(token: string, policy: GatePolicy, nowMs: number, options: VerifyOptions = DEFAULT_OPTIONS): VerifyOutcome | Promise<VerifyOutcome> {
  if (token.length > policy.maxTokenBytes) return 'token_too_large';
  // A forged token seen before: refused for the cost of a lookup.
  if (options.badSignatures?.has(token)) return 'bad_signature';

  const jws = parseCompactJws(token);
  if (jws === undefined) return 'malformed_token';
  const { header, payload } = jws;

  const alg = header.alg;
  if (typeof alg !== 'string') return 'malformed_token';
  if (header.crit !== undefined) return 'unsupported_crit'; // jitgate understands no extension
  // RFC 7797's unencoded payload. Without `crit` a verifier may ignore it (jose does), but a token
  // that asks for it is malformed here, as SPEC §1 says: only `true`, the default, may be written.
  if (header.b64 !== undefined && header.b64 !== true) return 'malformed_token';
  if (header.kid !== undefined && (typeof header.kid !== 'string' || header.kid === '')) return 'malformed_token';

  if (typeof payload.iss !== 'string') return 'invalid_claims';
  const issuer = policy.issuers.get(payload.iss);
  if (issuer === undefined) return 'unknown_issuer';
  if (!issuer.algorithms.has(alg)) return 'alg_not_allowed';
  if (issuer.typ !== undefined && (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== issuer.typ)) return 'wrong_typ';

  const keyState = issuer.keys.state(nowMs);
  if (keyState === 'loading') return 'keys_unavailable';
  if (keyState === 'stale') return 'keys_stale';

  const entry = issuer.keys.resolve(header.kid as string | undefined, alg);
  if (entry instanceof Promise) return entry.then((e) => verifyWith(e, token, jws.dot2, alg, payload, issuer, policy, nowMs, options));
  return verifyWith(entry, token, jws.dot2, alg, payload, issuer, policy, nowMs, options);
}

function verifyWith(
  entry: KeyEntry | undefined,
  token: string,
  dot2: number,
  alg: string,
  payload: Readonly<Record<string, unknown>>,
  issuer: IssuerPolicy,
  policy: GatePolicy,
  nowMs: number,
  options: VerifyOptions,
): VerifyOutcome | Promise<VerifyOutcome> {
  const key = entry?.keys.get(alg);
  if (entry === undefined || key === undefined) return 'unknown_key';
  const params = signatureParams(key, alg);
  if (params === null) return 'unknown_key';
  // jose refuses RSA keys under 2048 bits when verifying (a TypeError, which was malformed_token).
  if (params.unusable) return 'malformed_token';
  const signature = Buffer.from(token.slice(dot2 + 1), 'base64url');
  if (signature.length !== params.length) return badSignature(token, issuer, entry, options);
  if (options.mode === 'sync') {
    if (!verifySync(params, token, dot2, signature)) return badSignature(token, issuer, entry, options);
    return checkVerified(token, payload, issuer, policy, nowMs, entry);
  }
  const check = options.mode === 'batch' ? verifyBatched : verifyPooled;
  return new Promise((resolve, reject) => {
    check(params, token, dot2, signature, (ok) => {
      // Called from a drain or a pool callback, where a throw would escape the promise.
      try {
        resolve(ok ? checkVerified(token, payload, issuer, policy, nowMs, entry) : badSignature(token, issuer, entry, options));
      } catch (err) {
        reject(err);
      }
    });
  });
}

function badSignature(token: string, issuer: IssuerPolicy, entry: KeyEntry, options: VerifyOptions): 'bad_signature' {
  options.badSignatures?.add(token, issuer.keys, entry);
  return 'bad_signature';
}

/** A refusal after the signature verified, naming the token's string claims (an `act` only when it is an object). */
function refused(reason: DenyReason, p: Readonly<Record<string, unknown>>, issuer: IssuerPolicy): RefusedToken {
  const act = p.act;
  return new RefusedToken(reason, {
    iss: issuer.issuer,
    sub: typeof p.sub === 'string' ? p.sub : undefined,
    jti: typeof p.jti === 'string' ? p.jti : undefined,
    txn: typeof p.txn === 'string' ? p.txn : undefined,
    act: typeof act === 'object' && act !== null && !Array.isArray(act) ? act : undefined,
  });
}

/** RFC 9449 §4.2 `ath`: base64url of the SHA-256 of the access token's ASCII text. */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

function checkVerified(
  token: string,
  payload: Readonly<Record<string, unknown>>,
  issuer: IssuerPolicy,
  policy: GatePolicy,
  nowMs: number,
  key: KeyEntry,
): VerifyOutcome {
  const claims = checkClaims(payload as JWTPayload, issuer, policy.audience);
  if (typeof claims === 'string') return refused(claims, payload, issuer);
  const late = checkTime(claims, nowMs / 1000, issuer.toleranceSec);
  if (late !== undefined) return refused(late, payload, issuer);

  const grants = compileGrants(payload.authorization_details, policy.grant);
  if (grants === null) return refused('invalid_grant', payload, issuer);
  const status = checkStatusClaim(payload.status, issuer.statusList);
  if (typeof status === 'string') return refused(status, payload, issuer);

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
    memo: {},
  });
}
