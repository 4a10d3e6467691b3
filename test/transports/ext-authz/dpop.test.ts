/**
 * DPoP-bound grants through the ext_authz transports (RFC 9449; SPEC §1 `cnf`): the `htu` origin
 * comes from Envoy's `:authority` + scheme (gRPC), the Host Envoy passes (HTTP) or the proxy's
 * forwarded request (forward-auth); refusals carry the same DPoP challenge the proxy sends.
 */
import { calculateJwkThumbprint } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dpopProof } from '../../fixtures/dpop-proof.ts';
import { makeTestKeys, type TestKeys } from '../../fixtures/gate.ts';
import { makeKey, type TestKey } from '../../fixtures/keys.ts';
import { NOW, sign } from '../../fixtures/tokens.ts';
import { checkRequest, GrpcClient, headerList, httpCall, startHarness, type Harness } from './helpers.ts';

let keys: TestKeys;
let client: TestKey;
let jkt: string;
let h: Harness;
let grpc: GrpcClient;
let seq = 0;

beforeAll(async () => {
  keys = await makeTestKeys();
  client = await makeKey('ES256', 'client');
  jkt = await calculateJwkThumbprint(client.publicJwk, 'sha256');
  h = await startHarness(keys);
  grpc = new GrpcClient(h.grpcPort);
});
afterAll(async () => {
  grpc.close();
  await h.close();
});

const proof = (token: string, htu: string, htm = 'GET'): Promise<string> => dpopProof(client, token, { jti: `proof-${++seq}`, htu, htm, iat: NOW });

const bound = (jti: string) => sign(keys.a, { jti, cnf: { jkt } });
const reasonOf = (body: string) => JSON.parse(body).reason as string;

describe('gRPC: htu origin from attributes.request.http.scheme + host', () => {
  it('allows a bound token with a proof for http://orders.internal/…', async () => {
    const tok = await bound('d-g1');
    const r = await grpc.check(checkRequest('GET', '/orders/42?x=1', { authorization: `DPoP ${tok}`, dpop: await proof(tok, 'http://orders.internal/orders/42') }));
    expect(r.status?.code).toBe(0);
    expect(r.ok_response?.headers_to_remove).toContain('dpop');
  });

  it('refuses a proof made for another origin, with the DPoP challenge', async () => {
    const tok = await bound('d-g2');
    const r = await grpc.check(checkRequest('GET', '/orders/42', { authorization: `DPoP ${tok}`, dpop: await proof(tok, 'https://evil.example/orders/42') }));
    expect(r.status?.code).toBe(16);
    expect(reasonOf(r.denied_response!.body)).toBe('dpop_htu_mismatch');
    const challenge = Object.fromEntries(headerList(r.denied_response?.headers))['www-authenticate'];
    expect(challenge).toContain('DPoP realm="jitgate", error="invalid_dpop_proof"');
  });

  it('a bound token sent as Bearer is refused', async () => {
    const tok = await bound('d-g3');
    const r = await grpc.check(checkRequest('GET', '/orders/42', { authorization: `Bearer ${tok}`, dpop: await proof(tok, 'http://orders.internal/orders/42') }));
    expect(reasonOf(r.denied_response!.body)).toBe('dpop_bearer_scheme');
  });
});

describe('HTTP service: htu origin from the Host Envoy passes', () => {
  it('allows with Host: orders.internal, refuses a proof for another host', async () => {
    const tok = await bound('d-h1');
    const ok = await httpCall(h.httpPort, 'GET', '/authz/orders/42', ['host', 'orders.internal', 'content-length', '0', 'authorization', `DPoP ${tok}`, 'dpop', await proof(tok, 'http://orders.internal/orders/42')]);
    expect(ok.status).toBe(200);
    expect(ok.headers['x-envoy-auth-headers-to-remove']).toContain('dpop');
    const bad = await httpCall(h.httpPort, 'GET', '/authz/orders/42', ['host', 'orders.internal', 'authorization', `DPoP ${tok}`, 'dpop', await proof(tok, 'http://other.internal/orders/42')]);
    expect([bad.status, reasonOf(bad.body)]).toEqual([401, 'dpop_htu_mismatch']);
    expect(bad.headers['www-authenticate']).toContain('DPoP realm="jitgate"');
  });
});

describe('forward-auth: htu origin from the forwarded request', () => {
  it('allows when the proxy passes the original Host, and judges htm against X-Forwarded-Method', async () => {
    const tok = await bound('d-f1');
    const headers = ['host', 'orders.internal', 'x-forwarded-method', 'PATCH', 'x-forwarded-uri', '/orders/42', 'authorization', `DPoP ${tok}`];
    const ok = await httpCall(h.httpPort, 'GET', '/forward-auth', [...headers, 'dpop', await proof(tok, 'http://orders.internal/orders/42', 'PATCH')], { localAddress: '127.0.0.1' });
    expect(ok.status).toBe(200);
    const wrongMethod = await httpCall(h.httpPort, 'GET', '/forward-auth', [...headers, 'dpop', await proof(tok, 'http://orders.internal/orders/42', 'GET')], { localAddress: '127.0.0.1' });
    expect([wrongMethod.status, reasonOf(wrongMethod.body)]).toEqual([401, 'dpop_htm_mismatch']);
  });
});
