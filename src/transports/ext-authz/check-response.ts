/**
 * Decision → Envoy CheckResponse (SPEC §7). Every answer is a successful RPC carrying a
 * CheckResponse; the decision lives in `status.code`:
 *   allow → 0 with ok_response (identity headers with `append` explicitly false — Envoy's gRPC
 *           client reads `append`, not `append_action` — and headers_to_remove);
 *   deny  → 16 (401 cases), 7 (403), 14 (503 cases), 3 (400) with denied_response carrying the
 *           SPEC §3 HTTP status, WWW-Authenticate, content-type, cache-control and JSON body.
 * Denials are encoded once per reason at startup (with the policy's DPoP `algs`, through the same
 * renderDecision the proxy uses) and an allow once per cached token; only a refusal that carries a
 * fresh DPoP-Nonce, and an allow that must also remove stray inbound headers, are encoded per request.
 * A token's allow is kept on the token (its `memo`), not in a WeakMap beside it: with rotating tokens
 * an entry per token is an ephemeron each scavenge must trace, as the audit log found
 * (bench/README.md, "Audit fragments on the token").
 */
import type { ClientCert } from '../../core/cert-binding.ts';
import type { Allow, Decision, Deny, Unavailable } from '../../core/decision.ts';
import type { GatePolicy } from '../../core/policy.ts';
import { REASON_CODES, REASONS, type Reason } from '../../core/reasons.ts';
import { renderDecision, type Rendered } from '../respond.ts';
import type { UpstreamHeaders } from './upstream-headers.ts';
import { pushPeerHeaders } from '../tls/peer-headers.ts';

/** google.rpc.Code values used here. */
export const GRPC_OK = 0;
export const GRPC_INVALID_ARGUMENT = 3;
export const GRPC_PERMISSION_DENIED = 7;
export const GRPC_UNAVAILABLE = 14;
export const GRPC_UNAUTHENTICATED = 16;

export function grpcCodeFor(httpStatus: number): number {
  if (httpStatus === 401) return GRPC_UNAUTHENTICATED;
  if (httpStatus === 403) return GRPC_PERMISSION_DENIED;
  if (httpStatus === 400) return GRPC_INVALID_ARGUMENT;
  return GRPC_UNAVAILABLE; // 503: could not decide — still an explicit denial, never an RPC error
}

interface HeaderValueOption {
  readonly header: { readonly key: string; readonly value: string };
  readonly append: { readonly value: false };
}

const NO_STRAY: readonly string[] = Object.freeze([]);

const option = (key: string, value: string): HeaderValueOption => ({ header: { key, value }, append: { value: false } });

export interface DeniedAnswer {
  readonly httpStatus: number;
  readonly grpcCode: number;
  /** The encoded CheckResponse, as `encode` made it (framed, for the gRPC service). */
  readonly bytes: Buffer;
  /** The same response as an object, for tests and logs. */
  readonly message: object;
}

/** The denied CheckResponse for a rendered SPEC §3 answer: its headers minus content-length. */
function deniedMessage(reason: Reason, r: Rendered): { message: object; grpcCode: number } {
  const grpcCode = grpcCodeFor(r.status);
  const headers: HeaderValueOption[] = [];
  for (const [k, v] of Object.entries(r.headers)) if (k !== 'content-length') headers.push(option(k, v));
  return { grpcCode, message: { status: { code: grpcCode, message: reason }, denied_response: { status: { code: r.status }, headers, body: r.body } } };
}

export class CheckResponses {
  readonly #denied = new Map<Reason, DeniedAnswer>();
  readonly #upstream: UpstreamHeaders;
  readonly #policy: GatePolicy;
  readonly #encode: (message: object) => Buffer;
  #publicAllow: Buffer | undefined;
  /** Public-route allows of requests with a client certificate (SPEC §11): one per certificate (per TLS connection). */
  readonly #publicByCert = new WeakMap<ClientCert, Buffer>();

  /** `encode` is the Check method's response serializer (the gRPC service frames its output too). */
  constructor(upstream: UpstreamHeaders, policy: GatePolicy, encode: (message: object) => Buffer) {
    this.#upstream = upstream;
    this.#policy = policy;
    this.#encode = encode;
    for (const reason of REASON_CODES) {
      if (REASONS[reason].status === 0 || REASONS[reason].status === 502 || REASONS[reason].status === 504) continue;
      // A stand-in refusal: renderDecision reads only kind, reason and dpopNonce (none here).
      const r = renderDecision({ kind: 'deny', reason, path: null, token: null } as Deny, policy);
      const { grpcCode, message } = deniedMessage(reason, r);
      this.#denied.set(reason, Object.freeze({ httpStatus: r.status, grpcCode, bytes: encode(message), message }));
    }
  }

  /** The precomputed denial for a non-allow reason. */
  denied(reason: Reason): DeniedAnswer {
    const d = this.#denied.get(reason);
    if (d === undefined) throw new TypeError(`reason ${reason} has no ext_authz denial`);
    return d;
  }

  /** The OK CheckResponse for an allow, as an object for the Check serializer. */
  allowed(d: Allow, stray: readonly string[]): object {
    const headers: HeaderValueOption[] = d.token === null ? [] : d.token.identity.map(([k, v]) => option(k, v));
    const cert = d.clientCert;
    if (cert !== undefined) {
      const peer: string[] = [];
      pushPeerHeaders(peer, this.#upstream.peer, cert);
      for (let i = 0; i < peer.length; i += 2) headers.push(option(peer[i]!, peer[i + 1]!));
    }
    return { status: { code: GRPC_OK }, ok_response: { headers, headers_to_remove: this.#upstream.removals(d, stray) } };
  }

  /**
   * The encoded CheckResponse the Check handler passes to grpc-js. An allow without stray headers
   * depends on the token alone, so it is encoded once per cached token (and once for public routes).
   */
  answer(decision: Decision, stray: readonly string[]): { readonly bytes: Buffer; readonly httpStatus: number } {
    if (decision.kind === 'allow') return { bytes: this.#allowBytes(decision, stray), httpStatus: 200 };
    if (decision.kind === 'deny' && decision.dpopNonce !== undefined) return this.#fresh(decision);
    return this.denied(decision.reason);
  }

  #allowBytes(d: Allow, stray: readonly string[]): Buffer {
    if (stray.length !== 0) return this.#encode(this.allowed(d, stray));
    const t = d.token;
    const cert = d.clientCert;
    if (t === null) {
      if (cert === undefined) return (this.#publicAllow ??= this.#encode(this.allowed(d, NO_STRAY)));
      let bytes = this.#publicByCert.get(cert);
      if (bytes === undefined) this.#publicByCert.set(cert, (bytes = this.#encode(this.allowed(d, NO_STRAY))));
      return bytes;
    }
    // One answer per token, for the certificate it last came with: a token is used by one workload,
    // whose keep-alive connections share a certificate; another certificate re-encodes.
    const memo = t.memo;
    if (memo !== undefined && memo.grpcAllowBy === this && memo.grpcAllowCert === cert && memo.grpcAllow !== undefined) return memo.grpcAllow;
    const bytes = this.#encode(this.allowed(d, NO_STRAY));
    if (memo !== undefined) {
      memo.grpcAllow = bytes;
      memo.grpcAllowBy = this;
      memo.grpcAllowCert = cert;
    }
    return bytes;
  }

  /** A refusal whose headers depend on the request (DPoP-Nonce, RFC 9449 §8). */
  #fresh(d: Deny | Unavailable): { readonly bytes: Buffer; readonly httpStatus: number } {
    const r = renderDecision(d, this.#policy);
    return { bytes: this.#encode(deniedMessage(d.reason, r).message), httpStatus: r.status };
  }
}
