/**
 * What survives a successful verification, cached per token string. Only the signature and the
 * static claim checks are cached; expiry, key membership and revocation are re-checked on every
 * request (STYLE habit 10).
 */
import type { KeyEntry } from '../keys/key-set.ts';
import type { IssuerKeys } from '../keys/issuer-keys.ts';
import type { CompiledGrantEntry } from './grant.ts';
import type { StatusRef } from './status-ref.ts';

export interface VerifiedToken {
  readonly iss: string;
  readonly sub: string;
  readonly jti: string;
  readonly txn: string | undefined;
  /** RFC 8693 `act` as sent, for the audit line. */
  readonly act: unknown;
  /** `act.sub`, the immediate actor, for the identity header. */
  readonly actor: string | undefined;
  /** Seconds since the epoch. */
  readonly iat: number;
  readonly exp: number;
  readonly nbf: number | undefined;
  /** Clock tolerance of the issuer, seconds. */
  readonly toleranceSec: number;
  /** Counting grant entries for this service, in token order. Empty → 403 no_grant. */
  readonly grants: readonly CompiledGrantEntry[];
  /** Identity headers to set upstream (SPEC §4), as [lower-case name, value] pairs. */
  readonly identity: readonly (readonly [string, string])[];
  /** Identity header names this token does not set (Envoy must remove them; SPEC §7). */
  readonly identityUnset: readonly string[];
  /** `cnf.jkt` when the token is DPoP-bound: every request then needs a proof by that key (RFC 9449). */
  readonly cnfJkt: string | undefined;
  /** `cnf["x5t#S256"]` when the token is certificate-bound (RFC 8705 §3): every request needs that client certificate. */
  readonly cnfX5t?: string | undefined;
  /** base64url(SHA-256(token)) for bound tokens, the `ath` every proof must carry; computed on demand when absent. */
  readonly ath?: string | undefined;
  readonly keys: IssuerKeys;
  readonly key: KeyEntry;
  /** The token's status list entry (SPEC §10), parsed once; looked up on every request. */
  readonly status?: StatusRef | undefined;
  /**
   * What the transports derive from this token once and keep with it (the audit line's token fields,
   * the ext_authz gRPC allow). The one mutable part of a verified token; the decision core never reads it. Kept on
   * the token rather than in a WeakMap beside it: a WeakMap entry per token (an ephemeron the
   * garbage collector must trace) kept 190–290 more bytes per request alive through each scavenge on
   * the rotating-token row (bench/README.md, "Audit fragments on the token").
   */
  readonly memo?: TokenMemo;
}

export interface TokenMemo {
  /** `,"sub":…,"jti":…,"iss":…[,"txn":…][,"act":…]` as pino serializes them, redaction applied. */
  auditFields?: string;
  /** Which audit log serialized `auditFields` (another one, e.g. after a reload, serializes its own). */
  auditBy?: object;
  /** The ext_authz gRPC OK CheckResponse for this token, framed (no stray headers to remove). */
  grpcAllow?: Buffer;
  /** Which CheckResponses encoded `grpcAllow`, and for which client certificate (undefined: none). */
  grpcAllowBy?: object;
  grpcAllowCert?: object;
}
