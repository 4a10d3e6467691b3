/**
 * The request URI as the client addressed it, for the DPoP `htu` claim (RFC 9449 §4.3 check 9):
 * which origin the client used, and whether a proof's `htu` names that origin and this path.
 *
 * The origin comes, in order, from `dpop.external_origin`; from X-Forwarded-Proto / -Host when the
 * peer is a `dpop.trusted_proxies` address (the last list value: the one the nearest proxy added);
 * else from the transport's scheme (default `http`) and the Host header. The Host header is the
 * sender's choice, so without external_origin htu binds a proof to this method and path but not to
 * this host: a proof captured on its way to another server with the same path could be presented
 * here with that server's Host. Hence the docs' advice to set external_origin.
 *
 * @module
 */
import type { DecisionInput } from './decision.ts';
import type { DpopPolicy } from './policy.ts';
import { parseTarget } from './request-target.ts';

// Single-entry memo: a sidecar sees the same Host on almost every request.
let memoScheme = '';
let memoHost = '';
let memoOrigin: string | undefined;

/** `scheme://host[:port]`, lower-case, default port removed (RFC 3986 §6.2.3); undefined when unknown. */
export function requestOrigin(input: DecisionInput, dpop: DpopPolicy): string | undefined {
  if (dpop.externalOrigin !== undefined) return dpop.externalOrigin;
  let scheme = input.scheme ?? 'http';
  let host = input.host;
  if ((input.forwardedProto !== undefined || input.forwardedHost !== undefined) && dpop.trustedProxies.has(input.peer)) {
    if (input.forwardedProto !== undefined) scheme = lastListValue(input.forwardedProto);
    if (input.forwardedHost !== undefined) host = lastListValue(input.forwardedHost);
  }
  if (host === undefined || host === '') return undefined;
  if (scheme === memoScheme && host === memoHost) return memoOrigin;
  const origin = originOf(scheme, host);
  memoScheme = scheme;
  memoHost = host;
  memoOrigin = origin;
  return origin;
}

function lastListValue(v: string): string {
  const comma = v.lastIndexOf(',');
  return (comma === -1 ? v : v.slice(comma + 1)).trim();
}

/** A host[:port] from a header: reg-name or IP-literal characters only, so URL cannot find a path or userinfo in it. */
function originOf(scheme: string, host: string): string | undefined {
  const s = scheme.toLowerCase();
  if (s !== 'http' && s !== 'https') return undefined;
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    const ok =
      (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) ||
      c === 0x2e || c === 0x2d || c === 0x5f || c === 0x7e || c === 0x3a || c === 0x5b || c === 0x5d;
    if (!ok) return undefined;
  }
  const u = URL.parse(`${s}://${host}`);
  return u === null ? undefined : u.origin;
}

/**
 * Whether `htu` (query and fragment ignored) names `origin` + `path`, where `path` is jitgate's
 * canonical path of this request. An exact match costs a string compare; anything else is
 * normalized (RFC 3986 §6.2.2 syntax- and §6.2.3 scheme-based: case, default port, percent-encoding,
 * dot segments) and its path canonicalized the way the request's was (SPEC §2).
 */
export function htuMatches(htu: string, origin: string, path: string, maxTargetLength: number): boolean {
  let end = htu.length;
  for (let i = 0; i < htu.length; i++) {
    const c = htu.charCodeAt(i);
    if (c === 0x3f || c === 0x23) {
      end = i;
      break;
    }
  }
  if (end === origin.length + path.length && htu.startsWith(origin) && htu.startsWith(path, origin.length)) return true;
  const text = end === htu.length ? htu : htu.slice(0, end);
  if (!URI_TEXT.test(text)) return false;
  const u = URL.parse(text);
  if (u === null || (u.protocol !== 'http:' && u.protocol !== 'https:')) return false;
  if (u.username !== '' || u.password !== '' || u.origin !== origin || !sameAuthority(text, u)) return false;
  const t = parseTarget(u.pathname, maxTargetLength);
  return t.ok && t.target.path === path;
}

/**
 * RFC 3986 characters only (unreserved, reserved, `%`). `htu` is a URI (RFC 9449 §4.2); the WHATWG parser would
 * also take a backslash for a slash, strip spaces and tabs, and encode raw non-ASCII (a probe: each matched).
 */
const URI_TEXT = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]*$/;

/**
 * The authority as written is the host the parser made of it, up to case and a default or empty port (RFC 3986
 * §6.2.2.1, §6.2.3); an IPv6 literal in any spelling of its address. The WHATWG parser also rewrites `127.1` as
 * `127.0.0.1` and percent-encoded or IDN hosts — normalizations RFC 3986 does not make, so such an htu names another host
 * (a probe), and `http:/host` or `http:host` (no `//`) is no absolute URI's spelling of this origin.
 */
function sameAuthority(text: string, u: URL): boolean {
  const start = u.protocol.length + 2;
  if (text.charCodeAt(start - 2) !== 0x2f || text.charCodeAt(start - 1) !== 0x2f) return false;
  const slash = text.indexOf('/', start);
  let authority = text.slice(start, slash === -1 ? text.length : slash).toLowerCase();
  // An IPv6 literal names one address however it is written ([0:0:0:0:0:0:0:1], [::ffff:127.0.0.1]), and the
  // parsed origin already equals the request's: a re-probe saw a Host written so refused its own spelling.
  if (authority.startsWith('[')) return true;
  // An empty port is the default port (RFC 3986 §6.2.3), as the gate reads it in X-Forwarded-Host.
  if (authority.endsWith(':')) authority = authority.slice(0, -1);
  const defaultPort = u.protocol === 'https:' ? ':443' : ':80';
  if (authority.endsWith(defaultPort)) authority = authority.slice(0, -defaultPort.length);
  return authority === u.host;
}
