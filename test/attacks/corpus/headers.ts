/**
 * Header spoofing: identity headers a client sends itself (any case, underscore spellings,
 * duplicates), method and routing overrides, `Connection` nominating what jitgate sets, upgrade
 * (h2c smuggling), CRLF and other bytes the parser must refuse, oversized heads. Rows that are
 * allowed carry a `verify` that reads what the backend (or Envoy) is told.
 */
import { expect } from 'vitest';
import type { RecordedRequest } from '../../fixtures/servers.ts';
import type { Header, Seen, Transport } from '../harness.ts';
import type { Row, RowContext } from '../check.ts';
import { claims, signed } from '../jws.ts';
import { bearer } from './jwt-structure.ts';

const SUB = 'spiffe://prod/ci-deployer';
const IDENTITY = ['x-jit-subject', 'x-jit-token-id', 'x-jit-issuer', 'x-jit-txn', 'x-jit-actor'];
const valid = (c: RowContext, extra: Header[] = []): Header[] => [...bearer(signed(c.keys.a, claims({ jti: 'hdr-jti' }))), ...extra];

/** Names of `rec` (lower-case, `_` read as `-`, as a CGI backend reads them) and their values. */
function cgiView(rec: RecordedRequest): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < rec.rawHeaders.length; i += 2) out.push([rec.rawHeaders[i]!.toLowerCase().replaceAll('_', '-'), rec.rawHeaders[i + 1]!]);
  return out;
}

/**
 * After an allow: the backend (proxy) or Envoy (removal lists) ends up with jitgate's identity
 * only — one x-jit-subject with the token's sub, nothing else carrying the prefix in any spelling,
 * and none of `gone` (lower-case, as the client spelled them).
 */
export const onlyJitgateIdentity = (gone: readonly string[] = []) => (t: Transport, seen: Seen, rec: RecordedRequest | undefined): void => {
  if (seen.status !== 200) return; // a refusal has nothing to pass on
  if (t === 'proxy') {
    const view = cgiView(rec!);
    expect(view.filter(([n]) => n === 'x-jit-subject'), 'one subject, the token’s').toEqual([['x-jit-subject', SUB]]);
    expect(view.filter(([n]) => n.startsWith('x-jit-') && !['x-jit-subject', 'x-jit-token-id', 'x-jit-issuer'].includes(n)), 'no other identity header').toEqual([]);
    expect(view.filter(([n]) => n === 'x-jit-token-id').map(([, v]) => v)).toEqual(['hdr-jti']);
    for (const name of gone) expect(rec!.rawHeaders.map((h) => h.toLowerCase()), `${name} reached the backend`).not.toContain(name);
    return;
  }
  if (t === 'forward_auth') {
    expect(seen.headers.get('x-jit-subject')).toBe(SUB);
    return;
  }
  const removed = t === 'ext_authz_http' ? (seen.headers.get('x-envoy-auth-headers-to-remove') ?? '').split(/\s*,\s*/) : [...(seen.headersToRemove ?? [])];
  expect(seen.headers.get('x-jit-subject'), `${t} sets the subject`).toBe(SUB);
  for (const name of ['x-jit-txn', 'x-jit-actor', ...gone]) expect(removed, `${t} removes ${name}`).toContain(name);
};

/** The backend saw exactly these values for `name` (lower-case). */
const upstreamHas = (name: string, values: string[]) => (t: Transport, _s: Seen, rec: RecordedRequest | undefined): void => {
  if (t !== 'proxy') return;
  const got: string[] = [];
  for (let i = 0; i < rec!.rawHeaders.length; i += 2) if (rec!.rawHeaders[i]!.toLowerCase() === name) got.push(rec!.rawHeaders[i + 1]!);
  expect(got, name).toEqual(values);
};

const spoof = (names: string[]): Row => ({
  name: `spoofed ${names.join(' + ')}`,
  headers: (c) => valid(c, names.map((n): Header => [n, 'spiffe://evil/root'])),
  expect: 'granted',
  // Forward-auth cannot remove a header from the request the proxy passes on: it refuses instead.
  on: { forward_auth: 'identity_header' },
  verify: onlyJitgateIdentity(),
});

export const HEADER_ROWS: readonly (Row & { bug?: string })[] = [
  // Identity headers a client sends itself (SPEC §4: removed, then set by jitgate).
  ...[['X-Jit-Subject'], ['x-jit-subject', 'x-jit-subject'], ['X-JIT-SUBJECT'], ['x-JiT-sUbJeCt'], ['X-Jit-Token-Id'], ['X-Jit-Issuer'], ['x-jit-txn'], ['X-Jit-Actor'], ['x-jit-roles'], IDENTITY.map((n) => n.toUpperCase())].map(spoof),
  { name: 'spoofed identity with an empty value', headers: (c) => valid(c, [['X-Jit-Actor', '']]), expect: 'granted', on: { forward_auth: 'identity_header' }, verify: onlyJitgateIdentity() },
  // CGI-style backends read `_` as `-` (CVE-2024-45614): the underscore spelling must go too.
  { name: 'spoofed X_Jit_Subject (underscore) via the proxy, refused by forward-auth', headers: (c) => valid(c, [['X_Jit_Subject', 'root'], ['x_jit_actor', 'root'], ['X-Jit_Txn', 't']]), expect: 'granted', on: { ext_authz_http: 'skip', ext_authz_grpc: 'skip', forward_auth: 'identity_header' }, verify: onlyJitgateIdentity() },
  {
    name: 'spoofed x_jit_actor (underscore) is in the Envoy removal list',
    headers: (c) => valid(c, [['x_jit_actor', 'root']]),
    expect: 'granted',
    on: { proxy: 'skip', forward_auth: 'skip' },
    verify: onlyJitgateIdentity(['x_jit_actor']),
  },
  { name: 'underscore X_Forwarded_For / _Proto / _Host do not reach the backend', headers: (c) => valid(c, [['X_Forwarded_For', '10.0.0.1'], ['x_forwarded_proto', 'https'], ['X_Forwarded_Host', 'admin.internal']]), expect: 'granted', on: { ext_authz_http: 'skip', ext_authz_grpc: 'skip', forward_auth: 'skip' }, verify: onlyJitgateIdentity(['x_forwarded_for', 'x_forwarded_proto', 'x_forwarded_host']) },

  // Method override (SPEC §2: 400 unless configured to strip).
  ...['X-HTTP-Method-Override', 'x-http-method-override', 'X-HTTP-METHOD', 'X-Method-Override', 'x-MeThOd-OvErRiDe'].map((h): Row => ({ name: `method override ${h}`, headers: (c) => valid(c, [[h, 'DELETE']]), expect: 'method_override' })),
  { name: 'method override without a token', headers: () => [['X-HTTP-Method-Override', 'GET']], expect: 'method_override' },
  { name: 'method override with an empty value', headers: (c) => valid(c, [['X-HTTP-Method', '']]), expect: 'method_override' },
  { name: 'underscore X_HTTP_Method_Override does not reach the backend', headers: (c) => valid(c, [['X_HTTP_Method_Override', 'DELETE'], ['x_method_override', 'DELETE']]), expect: 'granted', on: { ext_authz_http: 'skip', ext_authz_grpc: 'skip', forward_auth: 'skip' }, verify: onlyJitgateIdentity(['x_http_method_override', 'x_method_override']) },
  {
    name: 'underscore X_HTTP_Method_Override is in the Envoy removal list',
    headers: (c) => valid(c, [['X_HTTP_Method_Override', 'DELETE'], ['x_method_override', 'DELETE']]),
    expect: 'granted',
    on: { proxy: 'skip', forward_auth: 'skip' },
    verify: onlyJitgateIdentity(['x_http_method_override', 'x_method_override']),
  },
  // Routing overrides (IIS URL Rewrite, Symfony, Zend; CVE-2018-14773).
  { name: 'X-Original-URL / X-Rewrite-URL do not reach the backend', headers: (c) => valid(c, [['X-Original-URL', '/orders/43'], ['X-Rewrite-URL', '/orders/43'], ['x_original_url', '/orders/43']]), expect: 'granted', on: { ext_authz_http: 'skip', ext_authz_grpc: 'skip', forward_auth: 'skip' }, verify: onlyJitgateIdentity(['x-original-url', 'x-rewrite-url', 'x_original_url']) },

  {
    name: 'X-Original-URL / X-Rewrite-URL are in the Envoy removal list',
    headers: (c) => valid(c, [['X-Original-URL', '/orders/43'], ['X-Rewrite-URL', '/orders/43']]),
    expect: 'granted',
    on: { proxy: 'skip', forward_auth: 'skip' },
    verify: onlyJitgateIdentity(['x-original-url', 'x-rewrite-url']),
  },

  // Connection nominating what jitgate sets or what frames the request.
  { name: 'Connection: x-jit-subject', headers: (c) => valid(c, [['Connection', 'x-jit-subject']]), expect: 'granted', verify: onlyJitgateIdentity() },
  { name: 'Connection nominating every identity header', headers: (c) => valid(c, [['Connection', `keep-alive, ${IDENTITY.join(', ')}`]]), expect: 'granted', verify: onlyJitgateIdentity() },
  { name: 'Connection: x-forwarded-for', headers: (c) => valid(c, [['X-Forwarded-For', '10.9.9.9'], ['Connection', 'X-Forwarded-For']]), expect: 'granted', verify: upstreamHas('x-forwarded-for', ['127.0.0.1']) },
  { name: 'Connection: host', headers: (c) => valid(c, [['Connection', 'host']]), expect: 'granted', verify: upstreamHas('host', ['orders.internal']) },
  { name: 'Connection: authorization keeps Authorization away', headers: (c) => valid(c, [['Connection', 'authorization']]), expect: 'granted', verify: upstreamHas('authorization', []) },
  { name: 'Connection: content-length keeps the body framed', method: 'PATCH', headers: (c) => valid(c, [['Connection', 'content-length']]), body: () => 'hello', expect: 'granted', on: { ext_authz_grpc: 'skip', forward_auth: 'skip' }, verify: (t, _s, rec) => void (t === 'proxy' && expect(rec!.bodyBytes).toBe(5)) },
  {
    name: 'h2c upgrade is not passed on (h2c smuggling)',
    headers: (c) => valid(c, [['Connection', 'Upgrade, HTTP2-Settings'], ['Upgrade', 'h2c'], ['HTTP2-Settings', 'AAMAAABkAAQAAP__']]),
    expect: 'granted',
    on: { ext_authz_http: 'skip', forward_auth: 'skip', ext_authz_grpc: 'skip' },
    verify: onlyJitgateIdentity(['upgrade', 'http2-settings']),
  },
  { name: 'websocket upgrade is not passed on', headers: (c) => valid(c, [['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='], ['Sec-WebSocket-Version', '13']]), expect: 'granted', on: { ext_authz_http: 'skip', forward_auth: 'skip', ext_authz_grpc: 'skip' }, verify: onlyJitgateIdentity(['upgrade']) },

  // CRLF and other bytes the parser refuses before any decision (node:http, llhttp strict).
  { name: 'bare LF splitting a header', headers: (c) => valid(c, [['X-Foo', 'a\nX-Jit-Subject: root']]), expect: 'bad_request', on: { ext_authz_grpc: 'granted' } },
  { name: 'bare CR splitting a header', headers: (c) => valid(c, [['X-Foo', 'a\rX-Jit-Subject: root']]), expect: 'bad_request', on: { ext_authz_grpc: 'granted' } },
  { name: 'obs-fold continuation line', headers: (c) => valid(c, [['X-Foo', 'a\r\n X-Jit-Subject: root']]), expect: 'bad_request', on: { ext_authz_grpc: 'skip' } },
  { name: 'space before the colon (Authorization : …)', headers: (c) => [['Authorization ', `Bearer ${signed(c.keys.a)}`]], expect: 'bad_request', on: { ext_authz_grpc: 'skip' } },
  { name: 'NUL in a header value', headers: (c) => valid(c, [['X-Foo', 'a\u0000b']]), expect: 'bad_request', on: { ext_authz_grpc: 'skip' } },
  // On the wire the CRLF ends the line, so the "injected" header is just a spoofed one (removed;
  // forward-auth refuses it); in a gRPC header map the value keeps it and is no compact JWS.
  { name: 'CRLF inside the Authorization value', headers: (c) => [['Authorization', `Bearer ${signed(c.keys.a, claims({ jti: 'hdr-jti' }))}\r\nX-Jit-Subject: root`]], expect: 'granted', on: { ext_authz_grpc: 'malformed_token', forward_auth: 'identity_header' }, verify: onlyJitgateIdentity() },
  { name: 'encoded CRLF in the path', target: '/orders/42%0d%0aX-Jit-Subject:%20root', headers: (c) => valid(c), expect: 'path_control_char' },
  { name: 'control: encoded CRLF in the query passes unchanged', target: '/orders/42?x=%0d%0aHost:%20evil', headers: (c) => valid(c), expect: 'granted', verify: (t, _s, rec) => void (t === 'proxy' && expect(rec!.url).toBe('/orders/42?x=%0d%0aHost:%20evil')) },

  // Oversized heads (limits.max_header_bytes 16 KB → 431).
  { name: 'one 20 KB header', headers: (c) => valid(c, [['X-Big', 'b'.repeat(20_000)]]), expect: 'headers_too_large', on: { ext_authz_grpc: 'skip' } },
  { name: '400 headers of 50 bytes', headers: (c) => valid(c, Array.from({ length: 400 }, (_, i): Header => [`X-H${i}`, 'v'.repeat(44)])), expect: 'headers_too_large', on: { ext_authz_grpc: 'skip' } },
  { name: '2100 tiny headers, an override hidden at the end', headers: (c) => valid(c, [...Array.from({ length: 2100 }, (): Header => ['a', 'b']), ['X-HTTP-Method-Override', 'DELETE']]), expect: 'headers_too_large', on: { ext_authz_grpc: 'skip' } },

  // Methods.
  { name: 'lower-case method', method: 'get', headers: (c) => valid(c), expect: 'bad_request', on: { ext_authz_grpc: 'method_not_granted', forward_auth: 'method_not_granted' } },
  { name: 'unknown method', method: 'FOO', headers: (c) => valid(c), expect: 'bad_request', on: { ext_authz_grpc: 'method_not_granted', forward_auth: 'method_not_granted' } },
  { name: 'WebDAV method outside the grant', method: 'PROPFIND', headers: (c) => valid(c), expect: 'method_not_granted' },
  { name: 'method with a space (forward-auth, gRPC)', method: 'GET /orders/43', headers: (c) => valid(c), expect: 'bad_method', on: { proxy: 'skip', ext_authz_http: 'skip' } },
  // SPEC §2: CONNECT is 400 connect_method on all four, judged on the method before the target.
  { name: 'CONNECT with authority-form', method: 'CONNECT', target: 'orders.internal:443', headers: (c) => valid(c), expect: 'connect_method' },
  { name: 'CONNECT with an origin-form target inside the grant (forward-auth, gRPC)', method: 'CONNECT', headers: (c) => valid(c), expect: 'connect_method', on: { proxy: 'skip', ext_authz_http: 'skip' } },
  { name: 'TRACE inside the path grant', method: 'TRACE', headers: (c) => valid(c), expect: 'method_not_granted' },
];
