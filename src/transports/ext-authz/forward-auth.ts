/**
 * Forward-auth (nginx auth_request, Traefik ForwardAuth, Caddy forward_auth; SPEC §7): the
 * original method and URI arrive in X-Forwarded-Method / X-Forwarded-Uri (or X-Original-Method /
 * X-Original-URI) and are believed only from a configured proxy address.
 *
 * Decisions where the SPEC leaves room (all refuse, none widen):
 * - From an address outside trusted_proxies every request is refused (400 untrusted_forwarded),
 *   with or without the headers: forward-auth has no meaning without them, and judging the
 *   caller's own method/URI would only invite confusion.
 * - From a trusted proxy, a missing method or URI is 400 missing_attributes — there is no
 *   fallback to the subrequest's own method (nginx subrequests are GET whatever the original was).
 * - A header given twice, or both families given with different values, is 400
 *   missing_attributes. This is what makes the spoofed-header bypass impossible even behind a
 *   trusted proxy: nginx's auth_request subrequest copies every client header, so a client can
 *   add `X-Forwarded-Uri` next to the `X-Original-URI` the proxy sets; the two disagree and the
 *   request is refused instead of one silently winning.
 * - The original authority is checked like the proxy checks Host (src/core/authority.ts): the
 *   request's own Host, and X-Forwarded-Host when the proxy sends one (Traefik, Caddy, or nginx
 *   with `proxy_set_header X-Forwarded-Host $host`) — at most one, and a valid `host[:port]`, else
 *   400 multiple_host / invalid_host. A backend that trusts X-Forwarded-Host would otherwise build
 *   its URL from `orders.internal/admin?`.
 * - Method-override and URL-rewrite headers, in any spelling (override-headers.ts), are refused
 *   (400 method_override / url_override) whatever `headers.method_override` says: forward-auth
 *   answers yes or no and cannot strip them, and the proxy in front passes them to the backend.
 * - For the same reason any header carrying the identity prefix (`headers.prefix`, also with `_` for
 *   `-`) is refused (400 identity_header), public routes included: SPEC §4 has every inbound copy
 *   removed, which the proxy and ext_authz do, but nginx cannot delete headers by prefix and its
 *   auth_request subrequest carries every client header, so a client's `x-jit-spiffe-id` or
 *   `x-jit-role` would otherwise reach the backend beside jitgate's real ones. A proxy that strips
 *   them before asking (the Caddy example, for the all-`-` and all-`_` spellings) meets it only for
 *   spellings it cannot delete (`X-Jit_Role`).
 * - A client-certificate header (client-cert-headers.ts) spelled with `_` anywhere (`X-SSL_Client-Verify`)
 *   is refused the same way (identity_header): a CGI-style backend folds it onto the real name, the
 *   examples can delete only the spellings they list, and a proxy's own headers are spelled with `-`
 *   (a re-probe got mixed spellings through the Caddy example to the backend).
 */
import { authorityRefusal } from '../../core/authority.ts';
import type { ClientCert } from '../../core/cert-binding.ts';
import type { DecisionInput } from '../../core/decision.ts';
import { inputFromRawHeaders } from '../http-input.ts';
import { overrideKind, type OverrideReason } from '../override-headers.ts';
import { CLIENT_CERT_HEADERS } from '../proxy/client-cert-headers.ts';

export type ForwardedInput = { readonly ok: true; readonly input: DecisionInput } | { readonly ok: false; readonly reason: 'missing_attributes' };

const MISSING: ForwardedInput = Object.freeze({ ok: false, reason: 'missing_attributes' });

const FORWARDED_HOST = 4;

/** Slots: 0 x-forwarded-method, 1 x-original-method, 2 x-forwarded-uri, 3 x-original-uri, 4 x-forwarded-host. */
function slotOf(name: string): number {
  if (name.length !== 18 && name.length !== 17 && name.length !== 16 && name.length !== 15 && name.length !== 14) return -1;
  switch (name.toLowerCase()) {
    case 'x-forwarded-host':
      return FORWARDED_HOST;
    case 'x-forwarded-method':
      return 0;
    case 'x-original-method':
      return 1;
    case 'x-forwarded-uri':
      return 2;
    case 'x-original-uri':
      return 3;
    default:
      return -1;
  }
}

const CERT_NAMES: ReadonlySet<string> = new Set(CLIENT_CERT_HEADERS);

/** A client-certificate header name written with `_` for some `-` (see the module comment). */
function underscoreCertHeader(name: string): boolean {
  return name.indexOf('_') !== -1 && CERT_NAMES.has(name.toLowerCase().replaceAll('_', '-'));
}

/** Whether `name` starts with the identity prefix (lower case, `-` separators) in any case, `_` for `-`. */
function hasIdentityPrefix(name: string, prefix: string): boolean {
  if (name.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) c += 0x20; // A-Z
    else if (c === 0x5f) c = 0x2d; // _ → -
    if (c !== prefix.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Reads the original method/URI from a trusted proxy's request and builds the decision input.
 * `peer` (the proxy) lets the DPoP origin use its X-Forwarded-Proto/-Host when it is also in
 * `dpop.trusted_proxies` (src/core/htu.ts). `identityPrefix` is `headers.prefix`.
 */
export function forwardedInput(rawHeaders: readonly string[], peer: string | undefined, identityPrefix: string, clientCert?: ClientCert): ForwardedInput {
  const values: (string | undefined)[] = [undefined, undefined, undefined, undefined];
  // A header forward-auth cannot remove and the proxy would pass on (see the module comment).
  let unremovable: OverrideReason | 'identity_header' | undefined;
  let forwardedHosts = 0;
  let forwardedHost: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const slot = slotOf(rawHeaders[i]!);
    if (slot === -1) {
      const name = rawHeaders[i]!;
      unremovable ??= overrideKind(name) ?? (hasIdentityPrefix(name, identityPrefix) || underscoreCertHeader(name) ? 'identity_header' : undefined);
      continue;
    }
    if (slot === FORWARDED_HOST) {
      forwardedHosts++;
      forwardedHost = rawHeaders[i + 1]!;
      continue;
    }
    if (values[slot] !== undefined) return MISSING; // given twice: ambiguous
    values[slot] = rawHeaders[i + 1]!;
  }
  const method = agree(values[0], values[1]);
  const uri = agree(values[2], values[3]);
  if (method === null || uri === null || method === '' || uri === '') return MISSING;
  const input = inputFromRawHeaders(rawHeaders, method, uri, peer, undefined, clientCert);
  // Judged by the gate like the Host refusal (after the target, so the audit line has the path).
  const refusal = input.refusal ?? (forwardedHosts === 0 ? undefined : authorityRefusal(forwardedHost, forwardedHosts)) ?? unremovable;
  return { ok: true, input: refusal === input.refusal ? input : { ...input, refusal } };
}

/** One value from either family; null when absent or when both are present and differ. */
function agree(a: string | undefined, b: string | undefined): string | null {
  if (a === undefined) return b ?? null;
  if (b === undefined || a === b) return a;
  return null;
}
