/**
 * SPEC §2 "CONNECT … is 400", on the transports that carry the method as data: forward-auth
 * (X-Forwarded-Method / X-Original-Method) and ext_authz gRPC (attributes.request.http.method).
 * The black-box review found forward-auth answering 403 method_not_granted for CONNECT, and 200
 * allow for a token minted with `--action CONNECT`. Every case here carries a token whose grant
 * names CONNECT for the path, so before the fix it was allowed.
 * (The proxy and the ext_authz HTTP service receive CONNECT as a real request line: node:http's
 * 'connect' event, test/transports/request-edges.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestKeys, type TestKeys } from '../../fixtures/gate.ts';
import { LOCATION, sign } from '../../fixtures/tokens.ts';
import { sendRaw } from '../../fixtures/servers.ts';
import { checkRequest, decisions, GrpcClient, httpCall, startHarness, type Harness } from './helpers.ts';

let keys: TestKeys;
let h: Harness;
let grpc: GrpcClient;

beforeAll(async () => {
  keys = await makeTestKeys();
  h = await startHarness(keys);
  grpc = new GrpcClient(h.grpcPort);
});
afterAll(async () => {
  grpc?.close();
  await h?.close();
});

/** A token granting CONNECT (and GET, the control) on /orders/42. */
const connectToken = (jti: string) =>
  sign(keys.a, { jti, authorization_details: [{ type: 'jit_grant', actions: ['CONNECT', 'GET'], locations: [LOCATION], paths: ['/orders/42'] }] });
const reasonOf = (body: string) => JSON.parse(body).reason as string;

describe('forward-auth', () => {
  const fa = async (methodHeader: string, method: string, jti: string) =>
    httpCall(h.httpPort, 'GET', '/forward-auth', [methodHeader, method, methodHeader.replace('method', 'uri'), '/orders/42', 'authorization', `Bearer ${await connectToken(jti)}`]);

  it('the same token is allowed for GET (control)', async () => {
    expect((await fa('x-forwarded-method', 'GET', 'fa-control')).status).toBe(200);
  });

  it.each([
    ['x-forwarded-method', 'CONNECT'],
    ['x-original-method', 'CONNECT'],
    ['x-forwarded-method', 'connect'],
  ])('%s: %s with a token granting CONNECT → 400 connect_method, one audit line and one count', async (header, method) => {
    const before = await decisions(h.ctx.metrics, 'forward_auth', 'connect_method');
    const lines = h.audit.length;
    const r = await fa(header, method, `fa-${header}-${method}`);
    expect([r.status, reasonOf(r.body)]).toEqual([400, 'connect_method']);
    expect(r.headers['x-jit-token-id']).toBeUndefined();
    expect(await decisions(h.ctx.metrics, 'forward_auth', 'connect_method')).toBe(before + 1);
    const audit = h.audit.slice(lines);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ transport: 'forward_auth', decision: 'deny', reason: 'connect_method', status: 400, method });
    // Judged before any token work, like every 400: the line names no token.
    expect(audit[0]!.jti).toBeUndefined();
  });
});

describe('ext_authz gRPC', () => {
  it('the same token is allowed for GET (control)', async () => {
    const r = await grpc.check(checkRequest('GET', '/orders/42', { authorization: `Bearer ${await connectToken('g-control')}` }));
    expect(r.status?.code).toBe(0);
  });

  it('method CONNECT with a token granting CONNECT → denied 400 connect_method (status 3), never an allow or an RPC error', async () => {
    const before = await decisions(h.ctx.metrics, 'ext_authz_grpc', 'connect_method');
    const lines = h.audit.length;
    const r = await grpc.check(checkRequest('CONNECT', '/orders/42', { authorization: `Bearer ${await connectToken('g-connect')}` }));
    expect(r.status?.code).toBe(3);
    expect(r.http_response).toBe('denied_response');
    expect(r.denied_response?.status?.code).toBe(400);
    expect(reasonOf(r.denied_response!.body)).toBe('connect_method');
    expect(await decisions(h.ctx.metrics, 'ext_authz_grpc', 'connect_method')).toBe(before + 1);
    expect(h.audit.slice(lines)).toEqual([expect.objectContaining({ transport: 'ext_authz_grpc', reason: 'connect_method', status: 400, method: 'CONNECT' })]);
  });
});

describe('ext_authz HTTP', () => {
  it("CONNECT (node's 'connect' event) → 400 connect_method, counted, and now one audit line too (SPEC §8)", async () => {
    const before = await decisions(h.ctx.metrics, 'ext_authz_http', 'connect_method');
    const lines = h.audit.length;
    const r = await sendRaw(`http://127.0.0.1:${h.httpPort}`, ['CONNECT orders.internal:443 HTTP/1.1', 'Host: orders.internal:443']);
    expect([r.status, reasonOf(r.text)]).toEqual([400, 'connect_method']);
    expect(await decisions(h.ctx.metrics, 'ext_authz_http', 'connect_method')).toBe(before + 1);
    expect(h.audit.slice(lines)).toEqual([expect.objectContaining({ transport: 'ext_authz_http', decision: 'deny', reason: 'connect_method', status: 400, method: 'CONNECT' })]);
  });
});
