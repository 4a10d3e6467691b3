/**
 * DPoP proof checks (RFC 9449 §4.3) for a request that carries a `cnf.jkt`-bound token. Runs on
 * every request — a proof is single-use — while the access token's own verification stays cached.
 * Cheap structural and claim checks come first; then the RFC 7638 thumbprint against `cnf.jkt`
 * (so only keys the issuer bound ever reach a signature check); then jose verifies the signature
 * with the proof's own public `jwk`; last, the jti is recorded (synchronously, so two copies of
 * one proof racing through cannot both pass). The header checks, thumbprint and key import are
 * cached by the exact protected-header bytes (a pure function of them); the signature never is.
 *
 * The header `jwk` is the key by design (the token binds its thumbprint), but it is checked here,
 * not trusted blindly as jose's EmbeddedJWK would: public members only, `kty`/`crv` fit `alg`, and
 * only the members the key type needs are imported.
 *
 * @module
 */
import { calculateJwkThumbprint, compactVerify, importJWK, type JWK, type JWTPayload } from 'jose';
import { LRUCache } from 'lru-cache';
import type { ReplayGuard } from '../cache/dpop-replay.ts';
import type { DenyReason } from './decision.ts';
import type { DpopNonces } from './dpop-nonce.ts';
import { htuMatches } from './htu.ts';
import { jsonObject, looksLikeCompactJws } from './jws-compact.ts';
import { normalizeTyp, type DpopPolicy } from './policy.ts';

export type DpopReason = Extract<DenyReason, `dpop_${string}`>;

/** What one request offers for the check. */
export interface ProofRequest {
  /** The single DPoP header value. */
  readonly proof: string;
  readonly method: string;
  /** The origin the client addressed (htu.ts), undefined when unknown: then no htu can match. */
  readonly origin: string | undefined;
  /** jitgate's canonical path of this request (SPEC §2). */
  readonly path: string;
  /** base64url(SHA-256(access token)). */
  readonly ath: string;
  /** The token's `cnf.jkt`. */
  readonly jkt: string;
  readonly nowMs: number;
}

/** A proof `jti` is remembered until its iat leaves the window; longer ones could bloat the cache. */
const MAX_JTI_LENGTH = 256;

/** Members of private or symmetric JWKs (RFC 7518 §6.2.2, §6.3.2, §6.4): none may appear in a proof key. */
const PRIVATE_MEMBERS: readonly string[] = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** The key type each proof alg needs; `crv` where the type has curves. */
const KEY_TYPE: ReadonlyMap<string, { readonly kty: 'EC' | 'OKP' | 'RSA'; readonly crv?: string }> = new Map([
  ['ES256', { kty: 'EC', crv: 'P-256' }],
  ['ES384', { kty: 'EC', crv: 'P-384' }],
  ['EdDSA', { kty: 'OKP', crv: 'Ed25519' }],
  ['Ed25519', { kty: 'OKP', crv: 'Ed25519' }],
  ['PS256', { kty: 'RSA' }],
  ['RS256', { kty: 'RSA' }],
] as const);

const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/**
 * The public JWK to verify with, rebuilt from the members its type needs; undefined when the header
 * `jwk` is absent, not an object, holds private material, or does not fit `alg`.
 */
export function proofPublicJwk(value: unknown, alg: string): JWK | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const j = value as Record<string, unknown>;
  for (const m of PRIVATE_MEMBERS) if (Object.hasOwn(j, m)) return undefined;
  const want = KEY_TYPE.get(alg);
  if (want === undefined || j.kty !== want.kty) return undefined;
  if (j.alg !== undefined && j.alg !== alg) return undefined;
  if (j.use !== undefined && j.use !== 'sig') return undefined;
  if (j.key_ops !== undefined && !(Array.isArray(j.key_ops) && j.key_ops.includes('verify'))) return undefined;
  switch (want.kty) {
    case 'EC':
      if (j.crv !== want.crv || !nonEmpty(j.x) || !nonEmpty(j.y)) return undefined;
      return { kty: 'EC', crv: want.crv, x: j.x, y: j.y };
    case 'OKP':
      if (j.crv !== want.crv || !nonEmpty(j.x)) return undefined;
      return { kty: 'OKP', crv: want.crv, x: j.x };
    case 'RSA':
      // A modulus under 2048 bits (342 base64url characters hold 256 bytes) fails jose's verify, which named it a
      // bad signature; it is a key that does not fit its alg (a probe).
      if (!nonEmpty(j.n) || !nonEmpty(j.e) || j.n.length < 342) return undefined;
      return { kty: 'RSA', n: j.n, e: j.e };
  }
}

/** What a checked protected header yields: its alg, the key's RFC 7638 thumbprint, the imported key. */
interface ProofKey {
  readonly alg: string;
  readonly jkt: string;
  readonly key: Awaited<ReturnType<typeof importJWK>>;
}

/**
 * Headers (typ, alg, public jwk) already checked, thumbprinted and imported. Entries are only added
 * for keys whose thumbprint matched a verified token's cnf.jkt, so strangers cannot churn it cheaply.
 */
const KEY_CACHE_ENTRIES = 1024;

export interface DpopVerifierOptions {
  readonly policy: DpopPolicy;
  readonly replay: ReplayGuard;
  /** Present when `dpop.use_nonce`. */
  readonly nonces: DpopNonces | undefined;
  readonly maxProofBytes: number;
  readonly maxTargetLength: number;
}

export class DpopVerifier {
  readonly #policy: DpopPolicy;
  readonly #replay: ReplayGuard;
  readonly #nonces: DpopNonces | undefined;
  readonly #maxProofBytes: number;
  readonly #maxTargetLength: number;
  readonly #keys = new LRUCache<string, ProofKey>({ max: KEY_CACHE_ENTRIES });

  constructor(o: DpopVerifierOptions) {
    this.#policy = o.policy;
    this.#replay = o.replay;
    this.#nonces = o.nonces;
    this.#maxProofBytes = o.maxProofBytes;
    this.#maxTargetLength = o.maxTargetLength;
  }

  get replay(): ReplayGuard {
    return this.#replay;
  }

  /** A nonce key shared with other processes (cluster primary or Redis), applied by Gate.start; nothing without use_nonce. */
  useNonceKey(key: Buffer): void {
    this.#nonces?.useKey(key);
  }

  /** The nonce for a `DPoP-Nonce` header; undefined unless use_nonce. */
  nonce(nowMs: number): string | undefined {
    return this.#nonces?.current(nowMs);
  }

  /** undefined when the proof passes every check (and its jti is now used up). */
  async check(req: ProofRequest): Promise<DpopReason | 'replay_check_unavailable' | undefined> {
    const { proof } = req;
    if (proof.length > this.#maxProofBytes || !looksLikeCompactJws(proof)) return 'dpop_proof_malformed';
    // A client sends the same protected header on every proof: what it yields is cached by its exact bytes.
    const headerSegment = proof.slice(0, proof.indexOf('.'));
    const known = this.#keys.get(headerSegment);
    let fresh: { readonly alg: string; readonly jwk: JWK } | undefined;
    if (known === undefined) {
      const h = this.#checkHeader(proof);
      if (typeof h === 'string') return h;
      fresh = h;
    }

    // Decoded once, a repeated member refused (`"htm":"GET","htm":"POST"` is read last-wins by JSON.parse and
    // first-wins elsewhere), as for grant tokens (a black-box probe found proofs with them accepted).
    const claims = jsonObject(proof, headerSegment.length + 1, proof.indexOf('.', headerSegment.length + 1)) as JWTPayload | undefined;
    if (claims === undefined) return 'dpop_proof_malformed';
    const claimProblem = this.#checkClaims(claims, req);
    if (claimProblem !== undefined) return claimProblem;
    // A replay is refused before any crypto (a flood of one captured proof stays cheap); the
    // authoritative check-and-record is after the signature.
    if (this.#replay.has(claims.jti as string, req.nowMs, req.jkt)) return 'dpop_replay';

    let key: ProofKey;
    if (known !== undefined) {
      if (known.jkt !== req.jkt) return 'dpop_key_mismatch';
      key = known;
    } else {
      const { alg, jwk } = fresh!;
      let jkt: string;
      try {
        jkt = await calculateJwkThumbprint(jwk, 'sha256');
      } catch {
        return 'dpop_proof_jwk';
      }
      // Before any import or signature work: only keys an issuer bound get that far (and into the cache).
      if (jkt !== req.jkt) return 'dpop_key_mismatch';
      try {
        key = { alg, jkt, key: await importJWK(jwk, alg) };
      } catch {
        return 'dpop_proof_jwk';
      }
      this.#keys.set(headerSegment, key);
    }
    try {
      await compactVerify(proof, key.key, { algorithms: [key.alg] });
    } catch {
      return 'dpop_proof_signature';
    }

    // Checking and recording the jti is one step (synchronous here, or in the cluster primary).
    const until = ((claims.iat as number) + this.#policy.iatWindowSec) * 1000;
    const recorded = this.#replay.add(claims.jti as string, until, req.nowMs, req.jkt);
    const outcome = recorded instanceof Promise ? await recorded : recorded;
    if (outcome === 'replay') return 'dpop_replay';
    if (outcome === 'full') return 'dpop_replay_cache_full';
    if (outcome === 'unavailable') return 'replay_check_unavailable';
    return undefined;
  }

  /** typ, alg, crit and jwk of a protected header not seen before. */
  #checkHeader(proof: string): { readonly alg: string; readonly jwk: JWK } | DpopReason {
    const header = jsonObject(proof, 0, proof.indexOf('.'));
    if (header === undefined) return 'dpop_proof_malformed';
    if (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== 'application/dpop+jwt') return 'dpop_proof_typ';
    const alg = header.alg;
    if (typeof alg !== 'string' || !this.#policy.algorithms.has(alg)) return 'dpop_proof_alg';
    if (header.crit !== undefined) return 'dpop_proof_malformed';
    const jwk = proofPublicJwk(header.jwk, alg);
    if (jwk === undefined) return 'dpop_proof_jwk';
    return { alg, jwk };
  }

  #checkClaims(c: JWTPayload, req: ProofRequest): DpopReason | undefined {
    const { jti, htm, htu, iat, ath } = c as Record<string, unknown>;
    if (!nonEmpty(jti) || jti.length > MAX_JTI_LENGTH || typeof htm !== 'string' || typeof htu !== 'string') return 'dpop_proof_claims';
    if (typeof iat !== 'number' || !Number.isFinite(iat) || typeof ath !== 'string') return 'dpop_proof_claims';
    if (htm !== req.method) return 'dpop_htm_mismatch';
    if (req.origin === undefined || !htuMatches(htu, req.origin, req.path, this.#maxTargetLength)) return 'dpop_htu_mismatch';
    if (Math.abs(req.nowMs / 1000 - iat) > this.#policy.iatWindowSec) return 'dpop_iat_window';
    if (ath !== req.ath) return 'dpop_ath_mismatch';
    if (this.#nonces !== undefined && !this.#nonces.accepts(c.nonce, req.nowMs)) return 'dpop_nonce_required';
    return undefined;
  }
}
