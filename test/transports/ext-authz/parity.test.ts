/**
 * One table of requests through the real proxy (in front of a recording upstream), Envoy's HTTP service,
 * Envoy's gRPC service and forward-auth (SPEC §7: "the same canonicalization … the same audit
 * line and metrics as the proxy"). Each row must give the same reason everywhere, the audit lines
 * must agree on decision/reason/path/sub/jti/method/grant, and each transport's counters must move.
 */
import { appendFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reason } from '../../../src/core/reasons.ts';
import type { Listener } from '../../../src/transports/context.ts';
import { startProxy } from '../../../src/transports/proxy/server.ts';
import { makeTestKeys, type TestKeys } from '../../fixtures/gate.ts';
import { startRecordingUpstream, type RecordingUpstream } from '../../fixtures/servers.ts';
import { forge, grantPayload, ISSUER_B, sign } from '../../fixtures/tokens.ts';
import { checkRequest, decisions, GrpcClient, httpCall, startHarness, type AuditLine, type Harness } from './helpers.ts';

interface Case {
  readonly name: string;
  readonly method: string;
  readonly target: string;
  /** Header lines as the client sent them (repeatable). */
  readonly headers: (keys: TestKeys) => Promise<[string, string][]>;
  readonly reason: Reason;
}

const tok = (claims: Record<string, unknown>, key: keyof TestKeys = 'a') => async (k: TestKeys): Promise<[string, string][]> => [['authorization', `Bearer ${await sign(k[key], claims)}`]];
const none = async (): Promise<[string, string][]> => [];

const CASES: readonly Case[] = [
  { name: 'allow', method: 'GET', target: '/orders/42', headers: tok({ jti: 'p-allow' }), reason: 'granted' },
  { name: 'allow below, with query', method: 'PATCH', target: '/orders/42/items/7?force=1', headers: tok({ jti: 'p-allow2' }), reason: 'granted' },
  { name: 'public route, no token', method: 'GET', target: '/healthz', headers: none, reason: 'public' },
  { name: 'no token', method: 'GET', target: '/orders/42', headers: none, reason: 'missing_token' },
  { name: 'not a JWS', method: 'GET', target: '/orders/42', headers: async () => [['authorization', 'Bearer not-a-jwt']], reason: 'malformed_token' },
  { name: 'alg HS256', method: 'GET', target: '/orders/42', headers: async () => [['authorization', `Bearer ${forge({ alg: 'HS256', kid: 'a-es256', typ: 'jit+jwt' }, grantPayload({ jti: 'p-hs' }))}`]], reason: 'alg_not_allowed' },
  { name: 'stranger key', method: 'GET', target: '/orders/42', headers: tok({ jti: 'p-stranger' }, 'stranger'), reason: 'bad_signature' },
  { name: "B's key claiming A", method: 'GET', target: '/orders/42', headers: tok({ jti: 'p-b' }, 'b'), reason: 'unknown_key' },
  { name: 'expired', method: 'GET', target: '/orders/42', headers: tok({ jti: 'p-exp', iat: 1_763_999_000, exp: 1_763_999_100 }), reason: 'expired' },
  { name: 'wrong audience', method: 'GET', target: '/orders/42', headers: tok({ jti: 'p-aud', aud: 'billing' }), reason: 'wrong_audience' },
  { name: 'revoked jti', method: 'GET', target: '/orders/42', headers: tok({ jti: 'p-revoked' }), reason: 'revoked' },
  { name: 'path outside grant', method: 'GET', target: '/orders/43', headers: tok({ jti: 'p-path' }), reason: 'path_not_granted' },
  { name: 'method outside grant', method: 'DELETE', target: '/orders/42', headers: tok({ jti: 'p-method' }), reason: 'method_not_granted' },
  { name: 'no counting entry', method: 'GET', target: '/orders/42', headers: tok({ jti: 'p-nogrant', authorization_details: [{ type: 'other' }] }), reason: 'no_grant' },
  { name: 'dot segment', method: 'GET', target: '/orders/42/%2e%2e/43', headers: tok({ jti: 'p-dot' }), reason: 'path_dot_segment' },
  { name: 'encoded slash', method: 'GET', target: '/orders%2F42', headers: tok({ jti: 'p-slash' }), reason: 'path_encoded_slash' },
  { name: 'two Authorization headers', method: 'GET', target: '/orders/42', headers: async (k) => [...(await tok({ jti: 'p-two' })(k)), ...(await tok({ jti: 'p-two' })(k))], reason: 'multiple_authorization' },
  { name: 'method override', method: 'GET', target: '/orders/42', headers: async (k) => [...(await tok({ jti: 'p-mo' })(k)), ['x-http-method-override', 'DELETE']], reason: 'method_override' },
  // Found by a black-box probe: the proxy answered 401 malformed_token where ext_authz (which cannot tell one
  // line from Envoy's merge of two) answered 400; and gRPC header keys were matched in lower case only.
  {
    name: 'one Authorization line holding two credentials',
    method: 'GET',
    target: '/orders/42',
    headers: async (k) => {
      const t = await sign(k.a, { jti: 'p-comma' });
      return [['authorization', `Bearer ${t}, Bearer ${t}`]];
    },
    reason: 'multiple_authorization',
  },
  { name: 'upper-case Authorization', method: 'GET', target: '/orders/42', headers: async (k) => [['Authorization', `Bearer ${await sign(k.a, { jti: 'p-upper' })}`]], reason: 'granted' },
  { name: 'upper-case method override', method: 'GET', target: '/orders/42', headers: async (k) => [['Authorization', `Bearer ${await sign(k.a, { jti: 'p-upper-mo' })}`], ['X-HTTP-Method-Override', 'DELETE']], reason: 'method_override' },
  { name: 'issuer B token for issuer B', method: 'GET', target: '/orders/42', headers: tok({ jti: 'p-issb', iss: ISSUER_B }, 'b'), reason: 'wrong_typ' },
];

type Transport = 'proxy' | 'ext_authz_http' | 'ext_authz_grpc' | 'forward_auth';
const TRANSPORTS: readonly Transport[] = ['proxy', 'ext_authz_http', 'ext_authz_grpc', 'forward_auth'];

let keys: TestKeys;
let h: Harness;
let grpc: GrpcClient;
let upstream: RecordingUpstream;
let proxy: Listener;
const headersOf = new Map<string, [string, string][]>();

beforeAll(async () => {
  keys = await makeTestKeys();
  // Issuer B has no typ rule in the fixture; require one so the last row is a 401 from B's own config.
  upstream = await startRecordingUpstream();
  h = await startHarness(keys, (c) => {
    c.issuers[1].typ = 'other+jwt';
    c.upstream = { url: upstream.url };
    c.listen = { host: '127.0.0.1', port: 0 };
  });
  proxy = await startProxy(h.ctx);
  grpc = new GrpcClient(h.grpcPort);
  for (const c of CASES) headersOf.set(c.name, await c.headers(keys));
  await appendFile(h.revokedFile, '{"jti":"p-revoked"}\n');
  await (h.gate.revocation.sources[0] as unknown as { reload(): Promise<void> }).reload();
});
afterAll(async () => {
  grpc.close();
  await proxy.close(100);
  await h.close();
  await upstream.close();
});

/** Runs one row through one transport; returns the reason it answered with and its audit line. */
async function run(t: Transport, c: Case): Promise<{ reason: string; audit: AuditLine }> {
  const headers = headersOf.get(c.name)!;
  const flat = headers.flat();
  const before = h.audit.length;
  let reason: string;
  if (t === 'proxy') {
    const forwarded = upstream.requests.length;
    const r = await httpCall(proxy.port, c.method, c.target, flat);
    const allowed = r.status === 200 && r.body === '{"ok":true}';
    expect(upstream.requests.length, 'the upstream sees exactly the allowed requests').toBe(forwarded + (allowed ? 1 : 0));
    // The proxy writes its audit line when the upstream response has ended, which may be just after the client saw it.
    for (let i = 0; i < 100 && h.audit.length === before; i++) await new Promise((r) => setTimeout(r, 5));
    reason = allowed ? (h.audit.at(-1)?.reason ?? '?') : JSON.parse(r.body).reason;
  } else if (t === 'ext_authz_http') {
    const r = await httpCall(h.httpPort, c.method, `/authz${c.target}`, ['content-length', '0', 'x-forwarded-proto', 'https', ...flat]);
    reason = r.status === 200 ? (h.audit.at(-1)?.reason ?? '?') : JSON.parse(r.body).reason;
    if (r.status === 200) expect(r.headers['x-envoy-auth-headers-to-remove']).toContain('authorization');
  } else if (t === 'ext_authz_grpc') {
    // Envoy's headers map: lower-case keys, repeated headers merged with ",".
    const map: Record<string, string> = {};
    for (const [k, v] of headers) map[k] = map[k] === undefined ? v : `${map[k]},${v}`;
    const r = await grpc.check(checkRequest(c.method, c.target, map));
    reason = r.status?.code === 0 ? (h.audit.at(-1)?.reason ?? '?') : JSON.parse(r.denied_response!.body).reason;
  } else {
    const r = await httpCall(h.httpPort, 'GET', '/forward-auth', ['x-forwarded-method', c.method, 'x-forwarded-uri', c.target, ...flat], { localAddress: '127.0.0.1' });
    reason = r.status === 200 ? (h.audit.at(-1)?.reason ?? '?') : JSON.parse(r.body).reason;
  }
  expect(h.audit.length, `${t}: exactly one audit line`).toBe(before + 1);
  return { reason, audit: h.audit.at(-1)! };
}

const comparable = (a: AuditLine) => ({ decision: a.decision, reason: a.reason, path: a.path, sub: a.sub, jti: a.jti, iss: a.iss, txn: a.txn, method: a.method, grant: a.grant });

describe('parity: gate, HTTP service, gRPC service, forward-auth', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const seen = new Map<Transport, { reason: string; audit: AuditLine }>();
    for (const t of TRANSPORTS) seen.set(t, await run(t, c));
    for (const t of TRANSPORTS) {
      expect(seen.get(t)!.reason, t).toBe(c.reason);
      expect(seen.get(t)!.audit.transport).toBe(t);
      expect(comparable(seen.get(t)!.audit), t).toEqual(comparable(seen.get('proxy')!.audit));
    }
  });

  it('moved each transport\'s counters once per row, by reason', async () => {
    const expected = new Map<Reason, number>();
    for (const c of CASES) expected.set(c.reason, (expected.get(c.reason) ?? 0) + 1);
    for (const t of TRANSPORTS) {
      for (const [reason, n] of expected) expect(await decisions(h.ctx.metrics, t, reason), `${t} ${reason}`).toBe(n);
    }
  });
});
