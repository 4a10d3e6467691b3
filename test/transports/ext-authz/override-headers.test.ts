/**
 * Issue 21 item 2: method-override and URL-rewrite headers where jitgate cannot remove them.
 * - Forward-auth answers only yes/no; the proxy in front passes the client's headers on. So every
 *   spelling (case, `_` for `-`) of X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override,
 *   X-Original-URL, X-Rewrite-URL is refused with 400 — also under `headers.method_override: strip`.
 * - ext_authz (HTTP and gRPC) can have Envoy remove them: every allow lists them, seen or not
 *   (Envoy's allowed_headers may hide them from jitgate).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestKeys, type TestKeys } from '../../fixtures/gate.ts';
import { sign } from '../../fixtures/tokens.ts';
import { checkRequest, GrpcClient, httpCall, startHarness, type Harness } from './helpers.ts';

let keys: TestKeys;
let reject: Harness;
let strip: Harness;
let grpc: GrpcClient;

beforeAll(async () => {
  keys = await makeTestKeys();
  reject = await startHarness(keys);
  strip = await startHarness(keys, (c) => (c.headers = { method_override: 'strip' }));
  grpc = new GrpcClient(strip.grpcPort);
});
afterAll(async () => {
  grpc?.close();
  await reject?.close();
  await strip?.close();
});

const reasonOf = (r: { body: string }) => (JSON.parse(r.body) as { reason: string }).reason;

/** Every spelling a CGI-style backend maps to the same variable, in mixed case. */
const METHOD_SPELLINGS = ['X-HTTP-Method-Override', 'x-http-method-override', 'X_HTTP_Method_Override', 'x-http_method-override', 'X-HTTP-Method', 'X_HTTP_METHOD', 'X-Method-Override', 'x_method_override'];
const URL_SPELLINGS = ['X-Original-URL', 'x-original-url', 'X_Original_URL', 'X-Rewrite-URL', 'x_rewrite-url'];

/** The lower-case names Envoy must remove on every allow: each name with every `-`/`_` choice. */
function allSpellings(): string[] {
  const out: string[] = [];
  for (const name of ['x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-url', 'x-rewrite-url']) {
    const parts = name.split('-');
    for (let mask = 0; mask < 1 << (parts.length - 1); mask++) {
      out.push(parts.reduce((acc, p, i) => (i === 0 ? p : acc + ((mask >> (i - 1)) & 1 ? '_' : '-') + p)));
    }
  }
  return out;
}

describe('forward-auth refuses what it cannot remove', () => {
  const fa = async (h: Harness, extra: string[], method = 'PATCH') =>
    httpCall(h.httpPort, 'GET', '/forward-auth', ['x-forwarded-method', method, 'x-forwarded-uri', '/orders/42', 'authorization', `Bearer ${await sign(keys.a, { jti: 'ov' })}`, ...extra]);

  it('control: the same request without them is allowed, in both modes', async () => {
    expect((await fa(reject, [])).status).toBe(200);
    expect((await fa(strip, [])).status).toBe(200);
  });

  it.each(METHOD_SPELLINGS)('%s: DELETE → 400 method_override, with method_override reject and strip', async (name) => {
    for (const h of [reject, strip]) {
      const r = await fa(h, [name, 'DELETE']);
      expect([r.status, reasonOf(r)]).toEqual([400, 'method_override']);
    }
  });

  it.each(URL_SPELLINGS)('%s: /admin → 400 url_override, with method_override reject and strip', async (name) => {
    for (const h of [reject, strip]) {
      const r = await fa(h, [name, '/admin']);
      expect([r.status, reasonOf(r)]).toEqual([400, 'url_override']);
    }
  });
});

describe('ext_authz lists them for removal on every allow, seen or not', () => {
  it('HTTP: x-envoy-auth-headers-to-remove carries every spelling (reject and strip)', async () => {
    for (const h of [reject, strip]) {
      const r = await httpCall(h.httpPort, 'GET', '/authz/orders/42', ['authorization', `Bearer ${await sign(keys.a, { jti: 'rm' })}`]);
      expect(r.status).toBe(200);
      const removed = String(r.headers['x-envoy-auth-headers-to-remove']).split(', ');
      expect(removed).toEqual(expect.arrayContaining(allSpellings()));
    }
  });

  it('HTTP: a public route allow carries them too', async () => {
    const r = await httpCall(reject.httpPort, 'GET', '/authz/healthz');
    expect(r.status).toBe(200);
    expect(String(r.headers['x-envoy-auth-headers-to-remove']).split(', ')).toEqual(expect.arrayContaining(allSpellings()));
  });

  it('gRPC: ok_response.headers_to_remove carries every spelling', async () => {
    const r = await grpc.check(checkRequest('GET', '/orders/42', { authorization: `Bearer ${await sign(keys.a, { jti: 'rm-g' })}` }));
    expect(r.status?.code).toBe(0);
    expect(r.ok_response?.headers_to_remove).toEqual(expect.arrayContaining(allSpellings()));
  });
});
