/**
 * The compiled, frozen policy the decision core reads. Built once from the validated config
 * (src/config/compile.ts); never re-validated per request.
 */
import type { IssuerKeys } from '../keys/issuer-keys.ts';
import type { AddressList } from './address-list.ts';
import type { GrantPolicy } from './grant.ts';
import type { PathPattern } from './path-pattern.ts';
import type { StatusListLookup } from './status-ref.ts';
import type { VerifyMode } from './verify-mode.ts';

export interface IssuerPolicy {
  readonly issuer: string;
  readonly algorithms: ReadonlySet<string>;
  readonly maxTtlSec: number;
  readonly toleranceSec: number;
  /** Normalized expected `typ` (lower case, no `application/`), or undefined when not checked. */
  readonly typ: string | undefined;
  readonly keys: IssuerKeys;
  /** Unbound tokens (no `cnf.jkt`) of this issuer are refused (`require_dpop`, else `dpop.require`). */
  readonly requireDpop?: boolean;
  /** The issuer's status lists (SPEC §10), when it has a `status_list` block. */
  readonly statusList?: StatusListLookup | undefined;
  /** Unbound tokens (no `cnf.x5t#S256`) of this issuer are refused (`require_cert_binding`, RFC 8705). */
  readonly requireCertBinding?: boolean;
}


/** Proof-of-possession rules (RFC 9449), compiled from the `dpop` config block. */
export interface DpopPolicy {
  /** Proof `alg` allowlist: asymmetric only. */
  readonly algorithms: ReadonlySet<string>;
  /** The same, space-separated, for the challenge's `algs` parameter (RFC 9449 §7.1). */
  readonly algs: string;
  /** A proof's `iat` must lie within ± this of now; its `jti` is remembered that long. */
  readonly iatWindowSec: number;
  /** Bound of the proof-jti replay cache; when full of unexpired entries, new proofs are refused. */
  readonly replayCacheEntries: number;
  /** Require a server nonce in every proof (RFC 9449 §8). */
  readonly useNonce: boolean;
  /** A nonce is valid in its rotation interval and the next one. */
  readonly nonceRotationMs: number;
  /** `scheme://host[:port]` the clients address (normalized), or undefined to take it from the request. */
  readonly externalOrigin: string | undefined;
  /** Peers whose X-Forwarded-Proto / X-Forwarded-Host are believed when there is no externalOrigin. */
  readonly trustedProxies: AddressList;
}

export interface PublicRoute {
  readonly methods: ReadonlySet<string>;
  readonly pattern: PathPattern;
}

export interface IdentityHeaderNames {
  readonly subject: string;
  readonly tokenId: string;
  readonly issuer: string;
  readonly txn: string;
  readonly actor: string;
  /** All five, for stripping and for Envoy's headers-to-remove. */
  readonly all: readonly string[];
}

export interface GatePolicy {
  readonly issuers: ReadonlyMap<string, IssuerPolicy>;
  readonly audience: string;
  readonly grant: GrantPolicy;
  readonly publicRoutes: readonly PublicRoute[];
  readonly identity: IdentityHeaderNames;
  readonly identityPrefix: string;
  readonly methodOverride: 'reject' | 'strip';
  readonly maxTokenBytes: number;
  readonly maxTargetLength: number;
  /** `limits.allow_dot_like_segments`: skip the dot-like segment refusal (src/core/dot-like.ts). */
  readonly allowDotLikeSegments?: boolean;
  /** Absent only in hand-built policies: DPoP-bound tokens are then refused (`dpop_unsupported`). */
  readonly dpop?: DpopPolicy;
  /** `service.spiffe_subject`: the client certificate's SPIFFE ID must equal `sub` (SPEC §11). */
  readonly spiffeSubject?: boolean;
  /** Where a cache miss's signature check runs (verify-mode.ts); `sync` when absent. */
  readonly verifyMode?: VerifyMode;
}

/**
 * The media type a `typ` names, for comparing (RFC 8725 §3.11: case-insensitively). RFC 7515 §4.1.9: a value
 * without a `/` means `application/` + it; one with a `/` is the whole type. So `jit+jwt` and
 * `application/jit+jwt` are the same, and `example/jwt` is not `application/example/jwt` (a review found them
 * equal here, jose did not).
 */
export function normalizeTyp(typ: string): string {
  const t = typ.toLowerCase();
  return t.includes('/') ? t : `application/${t}`;
}

export function identityHeaderNames(prefix: string): IdentityHeaderNames {
  const subject = `${prefix}subject`;
  const tokenId = `${prefix}token-id`;
  const issuer = `${prefix}issuer`;
  const txn = `${prefix}txn`;
  const actor = `${prefix}actor`;
  return Object.freeze({ subject, tokenId, issuer, txn, actor, all: Object.freeze([subject, tokenId, issuer, txn, actor]) });
}
