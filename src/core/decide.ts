/**
 * The decision: method + raw target + credentials → Allow | Deny | Unavailable.
 * No sockets, no timers, no files: keys and revocation are read through their interfaces and
 * time through the injected Clock. Every transport (proxy, ext_authz HTTP/gRPC, forward-auth)
 * calls this one function, so they cannot drift (Oathkeeper's shared HandleRequest).
 */
import { DpopReplayCache, type ReplayGuard } from '../cache/dpop-replay.ts';
import type { VerifiedTokenCache } from '../cache/verified-tokens.ts';
import { BadSignatureCache } from '../cache/bad-signatures.ts';
import type { RevocationList } from '../revocation/revocation-list.ts';
import { checkCertBinding, outsideValidity, validCertAt, type CertRules, type ClientCert } from './cert-binding.ts';
import type { Clock } from './clock.ts';
import { checkTime } from './claims.ts';
import { deny, unavailable, type Decision, type DecisionInput, type Deny, type Unavailable } from './decision.ts';
import { DpopVerifier } from './dpop.ts';
import { DpopNonces } from './dpop-nonce.ts';
import { matchGrants } from './grant.ts';
import { matchPattern } from './path-pattern.ts';
import type { GatePolicy } from './policy.ts';
import { requestOrigin } from './htu.ts';
import { parseTarget } from './request-target.ts';
import { statusDecision } from './status-list.ts';
import { accessTokenHash, acceptedToken, RefusedToken, verifyToken, type VerifyOptions, type VerifyOutcome } from './token.ts';
import type { VerifiedToken } from './verified-token.ts';

export interface DeciderDeps {
  readonly policy: GatePolicy;
  readonly clock: Clock;
  readonly cache: VerifiedTokenCache;
  readonly revocation: RevocationList;
  /** DPoP state shared with other processes (cluster workers); by default this process's own. */
  readonly dpopShared?: SharedDpopState;
}

/** What cluster workers share through the primary (src/cluster.ts) or a fleet through Redis. */
export interface SharedDpopState {
  /** Where proof jtis are recorded, instead of a cache of this process. */
  readonly replay: ReplayGuard;
}

/** 1–32 RFC 9110 token characters, for methods that arrive through ext_authz unchecked by a parser (and early-refusal.ts). */
export function isMethodToken(m: string): boolean {
  if (m.length === 0 || m.length > 32) return false;
  for (let i = 0; i < m.length; i++) {
    const c = m.charCodeAt(i);
    const alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (!alnum && "!#$%&'*+-.^_`|~".indexOf(m[i]!) === -1) return false;
  }
  return true;
}

/** CONNECT in any case (7 characters, checked by the caller). */
function isConnect(m: string): boolean {
  return m === 'CONNECT' || m.toUpperCase() === 'CONNECT';
}

/** The token after `Bearer ` (scheme case-insensitive, RFC 6750 §2.1), '' when empty, undefined for other schemes. */
export function bearerToken(header: string): string | undefined {
  if (header.length < 6) return undefined;
  const scheme = header.slice(0, 6);
  if (scheme !== 'Bearer' && scheme.toLowerCase() !== 'bearer') return undefined;
  if (header.length === 6) return '';
  const sep = header.charCodeAt(6);
  if (sep !== 0x20 && sep !== 0x09) return undefined;
  return header.slice(7).trim();
}

/** The token after `DPoP ` (scheme case-insensitive, RFC 9449 §7.1), '' when empty, undefined for other schemes. */
export function dpopSchemeToken(header: string): string | undefined {
  if (header.length < 4) return undefined;
  const scheme = header.slice(0, 4);
  if (scheme !== 'DPoP' && scheme.toLowerCase() !== 'dpop') return undefined;
  if (header.length === 4) return '';
  const sep = header.charCodeAt(4);
  if (sep !== 0x20 && sep !== 0x09) return undefined;
  return header.slice(5).trim();
}

/** Forged tokens remembered: at most this many × max_token_bytes (8 KiB by default → 8 MiB). */
const BAD_SIGNATURE_ENTRIES = 1024;

export class Decider {
  readonly #policy: GatePolicy;
  readonly #clock: Clock;
  readonly #cache: VerifiedTokenCache;
  readonly #revocation: RevocationList;
  readonly #dpop: DpopVerifier | undefined;
  /** Some issuer refuses unbound tokens: only then does an unbound token need the issuer lookup. */
  readonly #someRequireDpop: boolean;
  /** Certificate rules per issuer (SPEC §11), built once; empty when no issuer or service asks for any. */
  readonly #certRules: ReadonlyMap<string, CertRules>;
  /** Where a miss's signature check runs, and the forged tokens already refused (issue 20). */
  readonly #verify: VerifyOptions;

  constructor(deps: DeciderDeps) {
    this.#policy = deps.policy;
    this.#clock = deps.clock;
    this.#cache = deps.cache;
    this.#revocation = deps.revocation;
    const dp = deps.policy.dpop;
    this.#dpop =
      dp === undefined
        ? undefined
        : new DpopVerifier({
            policy: dp,
            replay: deps.dpopShared?.replay ?? new DpopReplayCache(dp.replayCacheEntries),
            // A random key until Gate.start hands over a shared one (cluster primary or Redis).
            nonces: dp.useNonce ? new DpopNonces(dp.nonceRotationMs) : undefined,
            maxProofBytes: deps.policy.maxTokenBytes,
            maxTargetLength: deps.policy.maxTargetLength,
          });
    this.#someRequireDpop = [...deps.policy.issuers.values()].some((i) => i.requireDpop === true);
    this.#certRules = certRulesOf(deps.policy);
    this.#verify = { mode: deps.policy.verifyMode ?? 'sync', badSignatures: new BadSignatureCache(BAD_SIGNATURE_ENTRIES) };
  }

  /** The DPoP proof verifier (undefined for a hand-built policy without `dpop`). */
  get dpop(): DpopVerifier | undefined {
    return this.#dpop;
  }

  get policy(): GatePolicy {
    return this.#policy;
  }

  /**
   * Synchronous when no work waits on anything: a cached token without a DPoP binding — the hot
   * path — and every refusal before verification. Only a cache miss (the signature check) and a
   * DPoP proof return a promise, so the common request costs no promise or microtask hop.
   * A throw (a bug) may surface either way; callers turn both into `internal_error`.
   */
  decide(input: DecisionInput): Decision | Promise<Decision> {
    const method = input.method;
    if (!isMethodToken(method)) return deny('bad_method');
    // SPEC §2: CONNECT is 400 on every transport, before any token work. The proxy never gets here
    // (node:http hands CONNECT to its 'connect' listener, client-error.ts); forward-auth and
    // ext_authz carry the method as data, so without this a grant naming CONNECT would allow it.
    // Any case: methods are case-sensitive, but a backend that folds `connect` must not see one.
    // On the hot path this is one length comparison (GET is 3 characters).
    if (method.length === 7 && isConnect(method)) return deny('connect_method');
    if (input.authorizationCount > 1) return deny('multiple_authorization');
    if (input.dpopCount > 1) return deny('multiple_dpop');

    const parsed = parseTarget(input.target, this.#policy.maxTargetLength, this.#policy.allowDotLikeSegments === true);
    if (!parsed.ok) return deny(parsed.reason);
    const { path, query, segments } = parsed.target;
    // After the target, so the refusal's audit line names the path (SPEC §8); both are 400s.
    if (input.clientCertMalformed === true) return deny('client_cert_malformed', path);
    // A listener that requires a certificate requires a valid one on every request, not only at the
    // handshake: a keep-alive connection, or a TLS session resumed from a ticket, outlives it.
    if (input.certRequired === true) {
      const invalid = input.clientCert === undefined ? 'cert_required' : outsideValidity(input.clientCert, this.#clock.nowMs());
      if (invalid !== undefined) return deny(invalid, path);
    }
    if (input.refusal !== undefined) return deny(input.refusal, path);

    if (input.methodOverride && this.#policy.methodOverride === 'reject') return deny('method_override', path);

    for (const route of this.#policy.publicRoutes) {
      if (route.methods.has(method) && matchPattern(route.pattern, segments)) {
        return { kind: 'allow', reason: 'public', path, query, token: null, grantIndex: -1, clientCert: input.clientCert === undefined ? undefined : validCertAt(input.clientCert, this.#clock.nowMs()) };
      }
    }

    if (input.authorization === undefined) return deny('missing_token', path);
    let token = bearerToken(input.authorization);
    let dpopScheme = false;
    if (token === undefined) {
      token = dpopSchemeToken(input.authorization);
      if (token === undefined) return deny('missing_token', path);
      dpopScheme = true;
    }
    if (token === '') return deny('malformed_token', path);

    const nowMs = this.#clock.nowMs();
    const stale = this.#revocation.staleSource(nowMs, true);
    if (stale !== undefined) return unavailable('revocation_stale', path);

    let verified = this.#cache.get(token);
    if (verified !== undefined) {
      const state = verified.keys.state(nowMs);
      if (state !== 'ready') return unavailable(state === 'stale' ? 'keys_stale' : 'keys_unavailable', path, verified);
      if (!verified.keys.has(verified.key)) {
        // The key left the set: the cached verification no longer counts (SPEC §6).
        this.#cache.delete(token);
        verified = undefined;
      } else {
        const late = checkTime(verified, nowMs / 1000, verified.toleranceSec);
        if (late !== undefined) {
          if (late === 'expired') this.#cache.delete(token);
          return deny(late, path, verified);
        }
      }
    }
    if (verified !== undefined) return this.#decideVerified(verified, token, dpopScheme, input, nowMs, path, query, segments);
    // The cache-miss path: the signature check, then the same steps as a hit.
    const next = (outcome: VerifyOutcome): Decision | Promise<Decision> => {
      if (typeof outcome === 'string') {
        return outcome === 'keys_unavailable' || outcome === 'keys_stale' ? unavailable(outcome, path) : deny(outcome, path);
      }
      if (outcome instanceof RefusedToken) return { ...deny(outcome.reason, path), ids: outcome.ids };
      this.#cache.set(token, outcome);
      return this.#decideVerified(outcome, token, dpopScheme, input, nowMs, path, query, segments);
    };
    const outcome = verifyToken(token, this.#policy, nowMs, this.#verify);
    return outcome instanceof Promise ? outcome.then(next) : next(outcome);
  }

  /**
   * SPEC §12: the token behind a request refused before verification (a 400 judged on the request
   * alone), so that the refusal can count against it. Only for counting — the refusal stands. The
   * cached verification, else a signature check (whose success fills the cache, as decide's would);
   * undefined unless the token is acceptable now: keys ready, key still in the set, within its
   * time, not revoked — and usable as it stands by whoever holds it (countableAt400).
   */
  identify(authorization: string): VerifiedToken | undefined | Promise<VerifiedToken | undefined> {
    const token = bearerToken(authorization) ?? dpopSchemeToken(authorization);
    if (token === undefined || token === '') return undefined;
    const nowMs = this.#clock.nowMs();
    const acceptable = (t: VerifiedToken): VerifiedToken | undefined =>
      t.keys.state(nowMs) === 'ready' &&
      t.keys.has(t.key) &&
      checkTime(t, nowMs / 1000, t.toleranceSec) === undefined &&
      !this.#revocation.isRevoked(t.jti, t.sub, t.iat, t.txn) &&
      this.#countableAt400(t)
        ? t
        : undefined;
    const cached = this.#cache.get(token);
    if (cached !== undefined) return acceptable(cached);
    const next = (outcome: VerifyOutcome): VerifiedToken | undefined => {
      const t = acceptedToken(outcome);
      if (t === undefined) return undefined;
      this.#cache.set(token, t);
      return acceptable(t);
    };
    // Through the same bad-signature memory and verify mode as decide: a forged token replayed on
    // 400 paths costs a lookup, not a signature check each time.
    const outcome = verifyToken(token, this.#policy, nowMs, this.#verify);
    return outcome instanceof Promise ? outcome.then(next) : next(outcome);
  }

  /**
   * A 400 is judged on the request alone, before possession or status: only a token its holder could
   * use as it stands — a plain bearer token of an issuer and service that ask for no binding, without
   * a status reference — counts there. Otherwise a thief holding only a certificate- or DPoP-bound
   * token, or one its status list already revoked, could get the victim's task or subject revoked
   * with malformed requests (a review found it for certificate-bound tokens).
   */
  #countableAt400(t: VerifiedToken): boolean {
    if (t.cnfJkt !== undefined || t.cnfX5t !== undefined || t.status !== undefined) return false;
    const issuer = this.#policy.issuers.get(t.iss);
    return issuer !== undefined && issuer.requireDpop !== true && this.#certRules.get(t.iss) === undefined;
  }

  #decideVerified(
    verified: VerifiedToken,
    token: string,
    dpopScheme: boolean,
    input: DecisionInput,
    nowMs: number,
    path: string,
    query: string,
    segments: readonly string[],
  ): Decision | Promise<Decision> {
    // The connection's certificate first (RFC 8705 §3): a stolen bound token fails here, on every request.
    if (verified.cnfX5t !== undefined || this.#certRules.size !== 0) {
      const refused = checkCertBinding(verified, input.clientCert, this.#certRules.get(verified.iss) ?? NO_CERT_RULES, nowMs);
      if (refused !== undefined) return { ...deny(refused, path, verified), clientCert: input.clientCert };
    }
    // Proof of possession before revocation and grants: without the key, nothing more is learned.
    if (verified.cnfJkt !== undefined || dpopScheme || this.#someRequireDpop) {
      const refused = this.#checkBinding(verified, token, dpopScheme, input, path, nowMs);
      if (refused instanceof Promise) return refused.then((r) => r ?? this.#authorize(verified, input.method, path, query, segments, nowMs, validCertAt(input.clientCert, nowMs)));
      if (refused !== undefined) return refused;
    }
    // An allow names the certificate (identity headers, the audit line) only inside its validity window.
    return this.#authorize(verified, input.method, path, query, segments, nowMs, validCertAt(input.clientCert, nowMs));
  }

  /**
   * RFC 9449 §7: a bound token needs the DPoP scheme and a valid proof; the DPoP scheme needs a bound
   * token. Synchronous except for the proof check itself, so an unbound Bearer token stays on the
   * synchronous path when some other issuer requires DPoP.
   */
  #checkBinding(t: VerifiedToken, token: string, dpopScheme: boolean, input: DecisionInput, path: string, nowMs: number): Deny | undefined | Promise<Deny | Unavailable | undefined> {
    const jkt = t.cnfJkt;
    if (jkt === undefined) {
      if (dpopScheme) return deny('dpop_unbound_token', path, t);
      if (this.#policy.issuers.get(t.iss)?.requireDpop === true) return deny('dpop_required', path, t);
      return undefined;
    }
    const dpop = this.#dpop;
    if (dpop === undefined) return deny('dpop_unsupported', path, t);
    // A bound token sent as Bearer is refused even with a valid proof beside it (RFC 9449 §7.2).
    if (!dpopScheme) return deny('dpop_bearer_scheme', path, t);
    if (input.dpop === undefined) return deny('dpop_proof_missing', path, t);
    const checked = dpop.check({
      proof: input.dpop,
      method: input.method,
      origin: requestOrigin(input, this.#policy.dpop!),
      path,
      ath: t.ath ?? accessTokenHash(token),
      jkt,
      nowMs,
    });
    return checked.then((reason) => {
      if (reason === undefined) return undefined;
      if (reason === 'dpop_nonce_required') return { ...deny(reason, path, t), dpopNonce: dpop.nonce(nowMs) };
      // Redis could not record the proof (SPEC §9): could not decide, never accepted unchecked.
      if (reason === 'replay_check_unavailable') return unavailable(reason, path, t);
      return deny(reason, path, t);
    });
  }

  #authorize(t: VerifiedToken, method: string, path: string, query: string, segments: readonly string[], nowMs: number, clientCert: ClientCert | undefined): Decision | Promise<Decision> {
    if (this.#revocation.isRevoked(t.jti, t.sub, t.iat, t.txn)) return deny('revoked', path, t);
    // Token Status List (SPEC §10): a bit lookup while the list is held; a wait only on its first fetch.
    if (t.status !== undefined) {
      const refused = statusDecision(t.status, nowMs, this.#clock, path, t);
      if (refused instanceof Promise) return refused.then((r) => r ?? this.#grant(t, method, path, query, segments, clientCert));
      if (refused !== undefined) return refused;
    }
    return this.#grant(t, method, path, query, segments, clientCert);
  }

  #grant(t: VerifiedToken, method: string, path: string, query: string, segments: readonly string[], clientCert: ClientCert | undefined): Decision {
    const match = matchGrants(t.grants, method, segments);
    if (typeof match === 'string') return deny(match, path, t);
    return { kind: 'allow', reason: 'granted', path, query, token: t, grantIndex: match, clientCert };
  }
}

const NO_CERT_RULES: CertRules = Object.freeze({ requireBinding: false, spiffeSubject: false });

/** Issuer → its certificate rules, or an empty map when nothing asks for a client certificate. */
function certRulesOf(policy: GatePolicy): ReadonlyMap<string, CertRules> {
  const spiffeSubject = policy.spiffeSubject === true;
  const rules = new Map<string, CertRules>();
  for (const i of policy.issuers.values()) {
    if (spiffeSubject || i.requireCertBinding === true) rules.set(i.issuer, Object.freeze({ requireBinding: i.requireCertBinding === true, spiffeSubject }));
  }
  return rules;
}
