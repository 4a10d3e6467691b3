/**
 * The header lists jitgate sends upstream and back to the client (SPEC §4). Both are built in one
 * pass over the raw header array into the flat `[name, value, …]` form undici and `writeHead` take,
 * so the hot path clones nothing and runs no regular expression: a name is lower-cased once and
 * looked up in a table compiled at start.
 *
 * Decisions an operator should know (also in the README):
 * - Host is passed through as the client sent it (Envoy's and HAProxy's default, not nginx's
 *   `$proxy_host`): a legacy backend usually builds absolute URLs and picks virtual hosts from it.
 *   A request with several Host lines forwards the first (what node:http reports as `req.headers.host`).
 * - X-Forwarded-For is appended to (nginx `$proxy_add_x_forwarded_for`); X-Forwarded-Proto,
 *   X-Forwarded-Host, X-Real-IP and X-Forwarded-Port are overwritten, because jitgate is the hop
 *   that knows them; Forwarded and the other client-written forwarding headers are dropped
 *   (forwarding-headers.ts).
 * - Headers named in `Connection` are removed, except Host and Content-Length (the request's routing
 *   and framing must not change under the backend) — and jitgate's own identity and X-Forwarded-*
 *   headers are appended after the filter, so `Connection: x-jit-subject` cannot remove them.
 * - An underscore spelling of a header jitgate owns (`X_Jit_Subject`, `x_forwarded_for`,
 *   `X_HTTP_Method_Override`) is dropped like the header itself: CGI-style backends map `-` and `_`
 *   to the same variable (Puma before 6.4.3, CVE-2024-45614; WSGI servers), so the client's copy
 *   could clobber or shadow jitgate's.
 * - Client-certificate headers (RFC 9440 `Client-Cert`, XFCC, nginx/Apache/HAProxy/Traefik spellings;
 *   the exact list in client-cert-headers.ts) are dropped: the identity headers carry the truth.
 * - `X-Original-URL` and `X-Rewrite-URL` are dropped: IIS URL Rewrite, Symfony and Zend route by
 *   them (CVE-2018-14773), which would let a granted path carry a different one to the backend.
 */
import type { ClientCert } from '../../core/cert-binding.ts';
import type { Config } from '../../config/schema.ts';
import { METHOD_OVERRIDE_HEADERS } from '../http-input.ts';
import { CLIENT_CERT_HEADERS } from './client-cert-headers.ts';
import { DROPPED_FORWARDING, OVERWRITTEN_FORWARDING } from './forwarding-headers.ts';
import { peerHeaderNames, pushPeerHeaders, type PeerHeaderNames } from '../tls/peer-headers.ts';

/** What to do with an inbound header, by lower-case name. Absent from the table → forward as is. */
const DROP = 1;
const HOST = 2;
const CONNECTION = 3;
const XFF = 4;
const CONTENT_LENGTH = 5;
const TRANSFER_ENCODING = 6;
type Action = typeof DROP | typeof HOST | typeof CONNECTION | typeof XFF | typeof CONTENT_LENGTH | typeof TRANSFER_ENCODING;

/** RFC 9110 §7.6.1 and the historic ones proxies still strip (keep-alive, proxy-connection). */
const HOP_BY_HOP: readonly string[] = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
];

const RESPONSE_HOP: ReadonlySet<string> = new Set(HOP_BY_HOP);

/** Headers some backends route by instead of the request target (IIS, Symfony, Zend; CVE-2018-14773): never forwarded. */
export const ROUTING_OVERRIDES: ReadonlySet<string> = new Set(['x-original-url', 'x-rewrite-url']);

/** Connection may not nominate these: they carry the request's routing and framing. */
const NOT_NOMINATABLE: ReadonlySet<string> = new Set(['host', 'content-length']);

export interface HeaderPolicy {
  /** Lower-case identity prefix (`x-jit-`); every inbound header starting with it is dropped. */
  readonly prefix: string;
  readonly request: ReadonlyMap<string, Action>;
  /** Dash-spelled names whose underscore spelling is dropped (everything in `request`, method overrides). */
  readonly owned: ReadonlySet<string>;
  /** The client-certificate identity headers (SPEC §11). */
  readonly peer?: PeerHeaderNames;
}

export function compileHeaderPolicy(config: Config): HeaderPolicy {
  const table = new Map<string, Action>();
  for (const h of HOP_BY_HOP) table.set(h, DROP);
  table.set('connection', CONNECTION);
  table.set('transfer-encoding', TRANSFER_ENCODING);
  table.set('content-length', CONTENT_LENGTH);
  table.set('host', HOST);
  table.set('x-forwarded-for', XFF);
  // Overwritten by jitgate, so the inbound values go.
  table.set('x-forwarded-proto', DROP);
  table.set('x-forwarded-host', DROP);
  for (const h of OVERWRITTEN_FORWARDING) table.set(h, DROP);
  for (const h of DROPPED_FORWARDING) table.set(h, DROP);
  // Credentials end here (SPEC §4); DPoP proofs are bound to jitgate's URL, never the backend's.
  table.set('dpop', DROP);
  if (!config.headers.forward_authorization) table.set('authorization', DROP);
  // node:http has already answered `Expect: 100-continue` (after the decision, see server.ts).
  table.set('expect', DROP);
  if (config.headers.method_override === 'strip') for (const h of METHOD_OVERRIDE_HEADERS) table.set(h, DROP);
  for (const h of ROUTING_OVERRIDES) table.set(h, DROP);
  // Client-certificate headers (RFC 9440, Envoy's XFCC, Traefik's, nginx/Apache/HAProxy spellings)
  // are never believed from a client and never forged past jitgate (SPEC §11): the backend learns
  // the verified certificate from the identity headers only.
  for (const h of CLIENT_CERT_HEADERS) table.set(h, DROP);
  const owned = new Set([...table.keys(), ...METHOD_OVERRIDE_HEADERS]);
  const prefix = config.headers.prefix.toLowerCase();
  return Object.freeze({ prefix, request: table, owned, peer: peerHeaderNames(prefix) });
}

export interface UpstreamHead {
  /** Flat `[name, value, …]` for undici. */
  readonly headers: string[];
  /** The request declared a body (Content-Length or Transfer-Encoding): stream `req` upstream. */
  readonly hasBody: boolean;
}

/**
 * Inbound raw headers → the headers the backend receives. `identity` is null for public routes.
 * `clientAddr` is appended to X-Forwarded-For and is X-Real-IP; `localPort` (the port the client
 * connected to, as text) is X-Forwarded-Port when known; `proto` is the listener's scheme
 * (X-Forwarded-Proto); `clientCert` the connection's verified certificate (SPEC §11).
 */
export function upstreamHeaders(
  raw: readonly string[],
  policy: HeaderPolicy,
  identity: readonly (readonly [string, string])[] | null,
  clientAddr: string,
  localPort?: string,
  clientCert?: ClientCert,
  proto = 'http',
): UpstreamHead {
  const out: string[] = [];
  const prefix = policy.prefix;
  const table = policy.request;
  let host: string | undefined;
  let xff: string | undefined;
  let nominated: string | undefined;
  let hasBody = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (lower.startsWith(prefix)) continue;
    if (lower.includes('_')) {
      const dashed = lower.replaceAll('_', '-');
      if (dashed.startsWith(prefix) || policy.owned.has(dashed)) continue;
    }
    const action = table.get(lower);
    if (action === undefined) {
      out.push(name, raw[i + 1]!);
      continue;
    }
    switch (action) {
      case HOST:
        if (host === undefined) {
          host = raw[i + 1]!;
          out.push(name, host);
        }
        break;
      case CONNECTION:
        nominated = nominated === undefined ? raw[i + 1]! : `${nominated},${raw[i + 1]!}`;
        break;
      case XFF:
        xff = xff === undefined ? raw[i + 1]! : `${xff}, ${raw[i + 1]!}`;
        break;
      case CONTENT_LENGTH:
        hasBody = true;
        out.push(name, raw[i + 1]!);
        break;
      case TRANSFER_ENCODING:
        // undici re-frames the streamed body (chunked) itself; the client's framing is hop-by-hop.
        hasBody = true;
        break;
      // DROP
    }
  }
  let headers = out;
  const names = nominated === undefined ? undefined : nominatedNames(nominated, table);
  if (names !== undefined) {
    headers = withoutNames(out, names);
    if (names.has('x-forwarded-for')) xff = undefined;
  }
  // Indexed: destructuring `for…of` allocated an iterator per request where V8 did not optimize it away.
  if (identity !== null) {
    for (let i = 0; i < identity.length; i++) {
      const pair = identity[i]!;
      headers.push(pair[0], pair[1]);
    }
  }
  if (clientCert !== undefined && policy.peer !== undefined) pushPeerHeaders(headers, policy.peer, clientCert);
  headers.push('x-forwarded-for', xff === undefined ? clientAddr : `${xff}, ${clientAddr}`, 'x-forwarded-proto', proto);
  if (host !== undefined) headers.push('x-forwarded-host', host);
  headers.push('x-real-ip', clientAddr);
  if (localPort !== undefined) headers.push('x-forwarded-port', localPort);
  return { headers, hasBody };
}

/**
 * Upstream response raw headers (latin1 bytes from undici) → what the client receives: everything
 * but hop-by-hop headers and those the upstream's Connection nominates.
 */
export function downstreamHeaders(raw: readonly (Buffer | string)[]): string[] {
  const out: string[] = [];
  let nominated: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const lower = name.toLowerCase();
    if (RESPONSE_HOP.has(lower)) {
      if (lower === 'connection') nominated = nominated === undefined ? raw[i + 1]!.toString('latin1') : `${nominated},${raw[i + 1]!.toString('latin1')}`;
      continue;
    }
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  const names = nominated === undefined ? undefined : nominatedNames(nominated, undefined);
  return names === undefined ? out : withoutNames(out, names);
}

/**
 * The names a Connection header nominates beyond those dropped anyway. Plain keep-alive/close
 * tokens nominate nothing, so the common `Connection: keep-alive` costs no second pass.
 */
function nominatedNames(connection: string, requestTable: ReadonlyMap<string, Action> | undefined): Set<string> | undefined {
  // What nearly every upstream response and client sends: no split, no allocation.
  if (connection === 'keep-alive' || connection === 'close' || connection === 'Keep-Alive') return undefined;
  let names: Set<string> | undefined;
  for (const token of connection.split(',')) {
    const t = token.trim().toLowerCase();
    if (t === '' || t === 'close' || t === 'keep-alive' || NOT_NOMINATABLE.has(t)) continue;
    if (requestTable?.get(t) === DROP || RESPONSE_HOP.has(t)) continue; // gone already
    (names ??= new Set()).add(t);
  }
  return names;
}

function withoutNames(headers: readonly string[], names: ReadonlySet<string>): string[] {
  const kept: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!names.has(headers[i]!.toLowerCase())) kept.push(headers[i]!, headers[i + 1]!);
  }
  return kept;
}
