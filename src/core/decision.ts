/**
 * The decision model shared by every transport. Three outcomes, not two (Envoy's
 * CheckStatus {OK, Denied, Error}): Unavailable ("could not decide") fails closed with 503
 * and is never rendered as an allow or a 401.
 */
import type { ClientCert } from './client-cert.ts';
import type { Reason } from './reasons.ts';
import type { VerifiedToken } from './verified-token.ts';

export type AllowReason = 'granted' | 'public';
export type UnavailableReason = 'keys_unavailable' | 'keys_stale' | 'revocation_stale' | 'internal_error' | 'replay_check_unavailable';
/** Token Status List (SPEC §10): no fresh list to look the token up in. */
export type StatusListUnavailableReason = 'status_list_unavailable' | 'status_list_timeout' | 'status_list_redirect' | 'status_list_stale' | 'status_list_capacity';
/** Proxy-only outcomes after an allow: the upstream failed (SPEC §3). */
export type UpstreamReason = 'upstream_unreachable' | 'upstream_tls' | 'upstream_timeout';
export type DenyReason = Exclude<Reason, AllowReason | UnavailableReason | StatusListUnavailableReason | UpstreamReason>;

/** What every transport extracts from its wire format before asking the gate. */
export interface DecisionInput {
  readonly method: string;
  /** The request target as received: origin-form path and optional query, undecoded. */
  readonly target: string;
  /** The single Authorization header value, if any. */
  readonly authorization: string | undefined;
  /** How many Authorization headers arrived (several → 400). */
  readonly authorizationCount: number;
  /** The DPoP header value, if any (SPEC §1 `cnf`). */
  readonly dpop: string | undefined;
  readonly dpopCount: number;
  /** A method-override header (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override) was present. */
  readonly methodOverride: boolean;
  // Where the client sent the request, for the DPoP `htu` check (RFC 9449 §4.3). Only read for
  // DPoP-bound tokens, and only when `dpop.external_origin` is not configured.
  /** The Host header (proxy, forward-auth) or `:authority` (ext_authz); undefined when absent or sent twice. */
  readonly host?: string;
  /** The client-facing scheme when the transport knows it (Envoy's `attributes.request.http.scheme`); default `http`. */
  readonly scheme?: string;
  /** Raw X-Forwarded-Proto / X-Forwarded-Host: believed only when `peer` is in `dpop.trusted_proxies`. */
  readonly forwardedProto?: string;
  readonly forwardedHost?: string;
  /** The TCP peer address (socket.remoteAddress) of the request jitgate received. */
  readonly peer?: string;
  /**
   * A refusal the transport found while reading its wire format (the authority: missing_host,
   * multiple_host, invalid_host — src/core/authority.ts; forward-auth's method_override,
   * url_override and identity_header); judged right after the request target, before credentials.
   */
  readonly refusal?: DenyReason;
  /** The connection's verified client certificate (SPEC §11); absent when there is none. */
  readonly clientCert?: ClientCert | undefined;
  /** A trusted proxy forwarded a client certificate that cannot be parsed: refused (400), never ignored. */
  readonly clientCertMalformed?: boolean;
  /**
   * The listener requires a client certificate (`listen.tls.require_client_cert`): a request without
   * one inside its validity window is refused (401 cert_required / client_cert_expired / _not_yet_valid).
   */
  readonly certRequired?: boolean;
}

export interface Allow {
  readonly kind: 'allow';
  readonly reason: AllowReason;
  /** Canonical path to forward (SPEC §2), without the query. */
  readonly path: string;
  /** Query including its leading `?`, or '' — passed through unchanged. */
  readonly query: string;
  /** null for public routes. */
  readonly token: VerifiedToken | null;
  /** Index in the token's authorization_details of the entry that matched; -1 for public routes. */
  readonly grantIndex: number;
  /** The client certificate the request came with, for the identity headers (SPEC §11). */
  readonly clientCert?: ClientCert | undefined;
}

export interface Deny {
  readonly kind: 'deny';
  readonly reason: DenyReason;
  /** Canonical path when the target parsed, for the audit line. */
  readonly path: string | null;
  /** The verified token when the deny came after verification (403, revoked), for the audit line. */
  readonly token: VerifiedToken | null;
  /** A fresh server nonce for the `DPoP-Nonce` response header (reason `dpop_nonce_required`, RFC 9449 §8). */
  readonly dpopNonce?: string;
  /** The client certificate a workload-identity refusal judged, for the audit line. */
  readonly clientCert?: ClientCert | undefined;
  /**
   * Who a token names when the token itself was refused after its signature verified (expired,
   * wrong audience, a bad status claim…): its claims are the issuer's, so the audit line names them.
   * Never set before the signature is checked, so a forger cannot put a name in the log.
   */
  readonly ids?: TokenIds | undefined;
}

/** The audit line's token fields (SPEC §8), as a refused token carried them: the string ones only. */
export interface TokenIds {
  readonly iss: string;
  readonly sub: string | undefined;
  readonly jti: string | undefined;
  readonly txn: string | undefined;
  readonly act: unknown;
}

export interface Unavailable {
  readonly kind: 'unavailable';
  readonly reason: UnavailableReason | StatusListUnavailableReason;
  readonly path: string | null;
  /** The verified token that could not be decided on (its status list or the replay store was away), for the audit line. */
  readonly token?: VerifiedToken | null;
}

export type Decision = Allow | Deny | Unavailable;

export function deny(reason: DenyReason, path: string | null = null, token: VerifiedToken | null = null): Deny {
  return { kind: 'deny', reason, path, token };
}

export function unavailable(reason: UnavailableReason | StatusListUnavailableReason, path: string | null = null, token: VerifiedToken | null = null): Unavailable {
  return { kind: 'unavailable', reason, path, token };
}

/** The audit identity of a decision: its verified token, else the ids of a token refused after its signature checked. */
export function auditIdsOf(d: Decision): VerifiedToken | TokenIds | null {
  if (d.kind === 'allow') return d.token;
  if (d.kind === 'unavailable') return d.token ?? null;
  return d.token ?? d.ids ?? null;
}
