/**
 * Decision → what jitgate answers (SPEC §3): status, WWW-Authenticate, a small JSON body and
 * `cache-control: no-store`. Everything is built once per reason at load, so a deny costs a table
 * lookup; nothing from the request is ever echoed.
 *
 * DPoP refusals (RFC 9449 §7.1) carry two challenges in one field (RFC 9110 §11.6.1): the SPEC §3
 * Bearer one first, then `DPoP … error="invalid_dpop_proof" | "use_dpop_nonce" | "invalid_token",
 * algs="…"`. `algs` depends on config, so `renderDecision` keeps one precomputed table per policy;
 * `render(reason)` alone names the default algs and cannot add the per-request `DPoP-Nonce`.
 */
import type { Deny, Unavailable } from '../core/decision.ts';
import { DEFAULT_DPOP_ALGORITHMS } from '../core/algorithms.ts';
import type { DpopPolicy, GatePolicy } from '../core/policy.ts';
import { REASON_CODES, REASONS, type Reason } from '../core/reasons.ts';

export const REALM = 'jitgate';

export interface Rendered {
  readonly reason: Reason;
  readonly status: number;
  /** undefined for 400 and 5xx answers. */
  readonly wwwAuthenticate: string | undefined;
  readonly body: string;
  readonly bodyBytes: Buffer;
  /** Ready to pass to writeHead: content-type, content-length, cache-control, www-authenticate. */
  readonly headers: Readonly<Record<string, string>>;
}

const DEFAULT_ALGS = DEFAULT_DPOP_ALGORITHMS.join(' ');

/** `algs`: the space-separated DPoP proof algs to advertise (default: the config default). */
export function wwwAuthenticate(reason: Reason, algs: string = DEFAULT_ALGS): string | undefined {
  const info = REASONS[reason];
  if (info.status === 401 && info.error === 'unauthorized') return `Bearer realm="${REALM}"`;
  if (info.status === 401) {
    const bearer = `Bearer realm="${REALM}", error="invalid_token", error_description="${reason}"`;
    const dpop = info.dpop;
    if (dpop === undefined) return bearer;
    return `${bearer}, DPoP realm="${REALM}", error="${dpop}", error_description="${reason}", algs="${algs}"`;
  }
  if (info.status === 403) return `Bearer realm="${REALM}", error="insufficient_scope"`;
  return undefined;
}

function build(reason: Reason, status: number, algs: string = DEFAULT_ALGS): Rendered {
  const info = REASONS[reason];
  const body = JSON.stringify({ error: info.error, reason });
  const bodyBytes = Buffer.from(body);
  const challenge = wwwAuthenticate(reason, algs);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-length': String(bodyBytes.length),
    'cache-control': 'no-store',
  };
  if (challenge !== undefined) headers['www-authenticate'] = challenge;
  return Object.freeze({ reason, status, wwwAuthenticate: challenge, body, bodyBytes, headers: Object.freeze(headers) });
}

const RENDERED: ReadonlyMap<Reason, Rendered> = new Map(
  REASON_CODES.filter((r) => REASONS[r].status !== 0).map((r) => [r, build(r, REASONS[r].status)]),
);

/**
 * For Envoy's HTTP ext_authz, where any 5xx counts as a service *error* (and so as an allow under
 * failure_mode_allow): the 503 cases answer 403 with the same reason (SPEC §7).
 */
const RENDERED_NO_5XX: ReadonlyMap<Reason, Rendered> = new Map(
  [...RENDERED].map(([r, v]) => [r, v.status >= 500 ? build(r, 403) : v]),
);

/** The precomputed answer for a non-allow reason. */
export function render(reason: Reason): Rendered {
  const r = RENDERED.get(reason);
  if (r === undefined) throw new TypeError(`reason ${reason} has no jitgate-made response`);
  return r;
}

export function renderWithoutServerError(reason: Reason): Rendered {
  const r = RENDERED_NO_5XX.get(reason);
  if (r === undefined) throw new TypeError(`reason ${reason} has no jitgate-made response`);
  return r;
}

const DPOP_REASONS: readonly Reason[] = REASON_CODES.filter((r) => REASONS[r].dpop !== undefined);

/** Per DPoP policy: the DPoP reasons rendered with its `algs`, built once on first use. */
const BY_POLICY = new WeakMap<DpopPolicy, ReadonlyMap<Reason, Rendered>>();

function dpopTable(dpop: DpopPolicy): ReadonlyMap<Reason, Rendered> {
  let table = BY_POLICY.get(dpop);
  if (table === undefined) {
    table = new Map(DPOP_REASONS.map((r) => [r, build(r, REASONS[r].status, dpop.algs)]));
    BY_POLICY.set(dpop, table);
  }
  return table;
}

/**
 * The answer for a refusal, exact for the gate's policy: DPoP challenges name the configured
 * `algs`, and a `dpop_nonce_required` refusal carries its fresh `DPoP-Nonce` header (the only case
 * that allocates). `withoutServerError` as in {@link renderWithoutServerError} (Envoy HTTP ext_authz).
 */
export function renderDecision(d: Deny | Unavailable, policy: GatePolicy | undefined, withoutServerError = false): Rendered {
  let r = withoutServerError ? renderWithoutServerError(d.reason) : render(d.reason);
  const dpop = policy?.dpop;
  if (dpop !== undefined && dpop.algs !== DEFAULT_ALGS && REASONS[d.reason].dpop !== undefined) {
    r = dpopTable(dpop).get(d.reason) ?? r;
  }
  if (d.kind === 'deny' && d.dpopNonce !== undefined) {
    r = Object.freeze({ ...r, headers: Object.freeze({ ...r.headers, 'dpop-nonce': d.dpopNonce }) });
  }
  return r;
}
