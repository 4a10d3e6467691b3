/**
 * Envoy's gRPC ext_authz contract over a real loopback socket (SPEC §7): every answer is an OK
 * RPC carrying a CheckResponse; allow/deny live in status.code (0/16/7/14/3).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestKeys } from '../../fixtures/gate.ts';
import { ISSUER_A, sign } from '../../fixtures/tokens.ts';
import { checkRequest, decisions, GrpcClient, headerList, rawCheckRequest, startGrpcSuite, stopGrpcSuite, withGateThrowing, withKeysState, type Harness } from './helpers.ts';
import { OVERRIDE_SPELLINGS } from '../../../src/transports/override-headers.ts';
import { CLIENT_CERT_HEADERS } from '../../../src/transports/proxy/client-cert-headers.ts';

let keys: TestKeys;
let h: Harness;
let client: GrpcClient;

beforeAll(async () => ({ keys, h, client } = await startGrpcSuite()));
afterAll(() => stopGrpcSuite(client, h));

const auth = async (claims: Record<string, unknown> = {}) => ({ authorization: `Bearer ${await sign(keys.a, claims)}` });

describe('allow', () => {
  it('answers status 0 with identity headers (append explicitly false) and headers_to_remove', async () => {
    const r = await client.check(checkRequest('GET', '/orders/42/items?limit=5', await auth({ jti: 'g-allow' })));
    expect(r.status?.code).toBe(0);
    expect(r.http_response).toBe('ok_response');
    expect(headerList(r.ok_response?.headers)).toEqual([
      ['x-jit-subject', 'spiffe://prod/ci-deployer'],
      ['x-jit-token-id', 'g-allow'],
      ['x-jit-issuer', ISSUER_A],
      ['x-jit-txn', 'deploy-4711'],
    ]);
    // Present and false (defaults on: an absent BoolValue would decode as null).
    for (const o of r.ok_response!.headers) expect(o.append).toEqual({ value: false });
    expect(r.ok_response?.headers_to_remove).toEqual(['authorization', 'dpop', ...OVERRIDE_SPELLINGS, ...CLIENT_CERT_HEADERS, 'x-jit-actor', 'x-jit-client-cert-sha256', 'x-jit-spiffe-id']);
  });

  it('a public route removes all five identity names and sets none', async () => {
    const r = await client.check(checkRequest('GET', '/healthz'));
    expect(r.status?.code).toBe(0);
    expect(r.ok_response?.headers).toEqual([]);
    expect(r.ok_response?.headers_to_remove).toEqual(['authorization', 'dpop', ...OVERRIDE_SPELLINGS, ...CLIENT_CERT_HEADERS, 'x-jit-subject', 'x-jit-token-id', 'x-jit-issuer', 'x-jit-txn', 'x-jit-actor', 'x-jit-client-cert-sha256', 'x-jit-spiffe-id']);
  });

  it('a cached token gets the same answer each time; a stray header gets its own list without changing the next answer', async () => {
    const a = await auth({ jti: 'g-cached' });
    const first = await client.check(checkRequest('GET', '/orders/42', a));
    const again = await client.check(checkRequest('GET', '/orders/42/items', a));
    expect(again).toEqual(first);
    expect(first.ok_response?.headers_to_remove).toEqual(['authorization', 'dpop', ...OVERRIDE_SPELLINGS, ...CLIENT_CERT_HEADERS, 'x-jit-actor', 'x-jit-client-cert-sha256', 'x-jit-spiffe-id']);
    const stray = await client.check(checkRequest('GET', '/orders/42', { ...a, 'x-jit-role': 'admin' }));
    expect(stray.ok_response?.headers_to_remove).toEqual(['authorization', 'dpop', ...OVERRIDE_SPELLINGS, ...CLIENT_CERT_HEADERS, 'x-jit-actor', 'x-jit-client-cert-sha256', 'x-jit-spiffe-id', 'x-jit-role']);
    expect(await client.check(checkRequest('GET', '/orders/42', a))).toEqual(first);
    // Another token never gets the first one's identity.
    const other = await client.check(checkRequest('GET', '/orders/42', await auth({ jti: 'g-cached-2', sub: 'spiffe://prod/other' })));
    expect(headerList(other.ok_response?.headers).slice(0, 2)).toEqual([
      ['x-jit-subject', 'spiffe://prod/other'],
      ['x-jit-token-id', 'g-cached-2'],
    ]);
  });

  it('also removes any other inbound header carrying the identity prefix', async () => {
    const r = await client.check(checkRequest('GET', '/orders/42', { ...(await auth({ jti: 'g-stray' })), 'x-jit-role': 'admin', 'x-jit-subject': 'spoofed' }));
    expect(r.status?.code).toBe(0);
    expect(r.ok_response?.headers_to_remove).toEqual(['authorization', 'dpop', ...OVERRIDE_SPELLINGS, ...CLIENT_CERT_HEADERS, 'x-jit-actor', 'x-jit-client-cert-sha256', 'x-jit-spiffe-id', 'x-jit-role']);
    expect(headerList(r.ok_response?.headers)[0]).toEqual(['x-jit-subject', 'spiffe://prod/ci-deployer']);
  });
});

describe('deny families', () => {
  const denied = (r: Awaited<ReturnType<GrpcClient['check']>>) => ({
    code: r.status?.code,
    http: r.denied_response?.status?.code,
    headers: Object.fromEntries(headerList(r.denied_response?.headers)),
    body: JSON.parse(r.denied_response?.body ?? 'null'),
  });

  it('16 for 401 cases, with the challenge and body', async () => {
    const none = denied(await client.check(checkRequest('GET', '/orders/42')));
    expect(none).toEqual({
      code: 16,
      http: 401,
      headers: { 'www-authenticate': 'Bearer realm="jitgate"', 'content-type': 'application/json', 'cache-control': 'no-store' },
      body: { error: 'unauthorized', reason: 'missing_token' },
    });
    const expired = denied(await client.check(checkRequest('GET', '/orders/42', await auth({ jti: 'g-exp', iat: 1_763_999_000, exp: 1_763_999_100 }))));
    expect(expired.code).toBe(16);
    expect(expired.headers['www-authenticate']).toBe('Bearer realm="jitgate", error="invalid_token", error_description="expired"');
    expect(expired.body.reason).toBe('expired');
  });

  it('7 for 403 cases', async () => {
    const r = denied(await client.check(checkRequest('GET', '/orders/43', await auth({ jti: 'g-403' }))));
    expect(r).toMatchObject({ code: 7, http: 403, body: { error: 'insufficient_scope', reason: 'path_not_granted' } });
    expect(r.headers['www-authenticate']).toBe('Bearer realm="jitgate", error="insufficient_scope"');
  });

  it('3 for 400 cases, without a challenge', async () => {
    const r = denied(await client.check(checkRequest('GET', '/orders/42/../43', await auth({ jti: 'g-400' }))));
    expect(r).toMatchObject({ code: 3, http: 400, body: { reason: 'path_dot_segment' } });
    expect(r.headers['www-authenticate']).toBeUndefined();
    const mo = denied(await client.check(checkRequest('GET', '/orders/42', { ...(await auth({ jti: 'g-mo' })), 'x-http-method-override': 'DELETE' })));
    expect(mo.body.reason).toBe('method_override');
  });

  it('14 when the gate cannot decide (keys not loaded), still an explicit denial', async () => {
    const a = await auth({ jti: 'g-503' });
    await withKeysState(h, 'loading', async () => {
      const r = denied(await client.check(checkRequest('GET', '/orders/42', a)));
      expect(r).toMatchObject({ code: 14, http: 503, body: { error: 'unavailable', reason: 'keys_unavailable' } });
      expect(await client.health()).toEqual({ status: 2 });
    });
    expect(await client.health()).toEqual({ status: 1 });
  });

  it.each(['rejects', 'throws'] as const)('14 internal_error when the decision %s — an RPC error would be a service failure to Envoy', async (how) => {
    const a = await auth({ jti: `g-boom-${how}` });
    await withGateThrowing(
      h,
      async () => {
        const r = denied(await client.check(checkRequest('GET', '/orders/42', a)));
        expect(r).toMatchObject({ code: 14, http: 503, body: { reason: 'internal_error' } });
      },
      how,
    );
    // The server keeps answering afterwards.
    expect((await client.check(checkRequest('GET', '/orders/42', a))).status?.code).toBe(0);
  });
});

describe('headers: map and header_map', () => {
  it('reads header_map raw_value bytes (encode_raw_headers)', async () => {
    const tok = await sign(keys.a, { jti: 'g-raw' });
    const r = await client.check(rawCheckRequest('PATCH', '/orders/42', [['Authorization', `Bearer ${tok}`], ['x-jit-team', 'x']]));
    expect(r.status?.code).toBe(0);
    expect(headerList(r.ok_response?.headers)[1]).toEqual(['x-jit-token-id', 'g-raw']);
    expect(r.ok_response?.headers_to_remove).toContain('x-jit-team');
  });

  it('header_map with two Authorization entries → 3 multiple_authorization', async () => {
    const tok = await sign(keys.a, { jti: 'g-two' });
    const r = await client.check(rawCheckRequest('GET', '/orders/42', [['authorization', `Bearer ${tok}`], ['authorization', 'Bearer other']]));
    expect(r.status?.code).toBe(3);
    expect(JSON.parse(r.denied_response!.body).reason).toBe('multiple_authorization');
  });

  it('one header_map entry holding two credentials → 3 multiple_authorization, as every other transport answers', async () => {
    const tok = await sign(keys.a, { jti: 'g-one-entry' });
    const r = await client.check(rawCheckRequest('GET', '/orders/42', [['authorization', `Bearer ${tok}, Bearer ${tok}`]]));
    expect([r.status?.code, JSON.parse(r.denied_response!.body).reason]).toEqual([3, 'multiple_authorization']);
  });

  it('the headers map merged two Authorization headers with "," → 3 multiple_authorization', async () => {
    const tok = await sign(keys.a, { jti: 'g-merged' });
    const r = await client.check(checkRequest('GET', '/orders/42', { authorization: `Bearer ${tok},Bearer ${tok}` }));
    expect(JSON.parse(r.denied_response!.body).reason).toBe('multiple_authorization');
  });

  it('header_map raw bytes that are not UTF-8 are judged, not folded', async () => {
    const r = await client.check({ attributes: { request: { http: { method: 'GET', path: '/orders/42', host: 'orders.internal', header_map: { headers: [{ key: 'authorization', raw_value: Buffer.from([0x42, 0x65, 0x61, 0x72, 0x65, 0x72, 0x20, 0xff, 0xfe]) }] } } } } });
    expect(r.status?.code).toBe(16);
    expect(JSON.parse(r.denied_response!.body).reason).toBe('malformed_token');
  });
});

describe('malformed input never crashes and never becomes an RPC error', () => {
  it.each([
    ['an empty CheckRequest', {}],
    ['attributes without request', { attributes: {} }],
    ['request without http', { attributes: { request: {} } }],
    ['http without path', { attributes: { request: { http: { method: 'GET' } } } }],
    ['http without method', { attributes: { request: { http: { path: '/orders/42' } } } }],
  ])('%s → 3 missing_attributes', async (_name, req) => {
    const r = await client.check(req);
    expect(r.status?.code).toBe(3);
    expect(r.denied_response?.status?.code).toBe(400);
    expect(JSON.parse(r.denied_response!.body)).toEqual({ error: 'invalid_request', reason: 'missing_attributes' });
  });

  it('bytes that are not a CheckRequest → 3 missing_attributes', async () => {
    const r = await client.checkBytes(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    expect(r.status?.code).toBe(3);
    expect(JSON.parse(r.denied_response!.body).reason).toBe('missing_attributes');
  });

  it('a garbage method → 3 bad_method', async () => {
    const r = await client.check(checkRequest('GE T\r\n', '/orders/42'));
    expect(r.status?.code).toBe(3);
    expect(JSON.parse(r.denied_response!.body).reason).toBe('bad_method');
  });

  it('a huge path → 3 path_too_long', async () => {
    const r = await client.check(checkRequest('GET', '/orders/' + 'a'.repeat(1_000_000)));
    expect(r.status?.code).toBe(3);
    expect(JSON.parse(r.denied_response!.body).reason).toBe('path_too_long');
  });

  it('a path that is not origin-form → 3 bad_request_target', async () => {
    const r = await client.check(checkRequest('GET', 'http://evil/orders/42'));
    expect(JSON.parse(r.denied_response!.body).reason).toBe('bad_request_target');
  });

  it('records metrics and one audit line per Check, with the original method', async () => {
    const before = await decisions(h.ctx.metrics, 'ext_authz_grpc', 'path_not_granted');
    const lines = h.audit.length;
    await client.check(checkRequest('DELETE', '/orders/42', await auth({ jti: 'g-audit' })));
    expect(await decisions(h.ctx.metrics, 'ext_authz_grpc', 'method_not_granted')).toBeGreaterThan(0);
    expect(await decisions(h.ctx.metrics, 'ext_authz_grpc', 'path_not_granted')).toBe(before);
    expect(h.audit.length).toBe(lines + 1);
    expect(h.audit.at(-1)).toMatchObject({ transport: 'ext_authz_grpc', decision: 'deny', reason: 'method_not_granted', status: 403, method: 'DELETE', path: '/orders/42', jti: 'g-audit' });
  });
});

describe('health', () => {
  it('answers SERVING for "" and for the Authorization service name, NOT_FOUND for others', async () => {
    expect(await client.health()).toEqual({ status: 1 });
    expect(await client.health('envoy.service.auth.v3.Authorization')).toEqual({ status: 1 });
    await expect(client.health('other.Service')).rejects.toMatchObject({ code: 5 });
  });
});
