/**
 * SPEC §8/§12: every transport's audit line names the client address — the TCP peer for the
 * HTTP listeners (proxy, ext_authz HTTP, forward-auth), and for ext_authz gRPC the downstream
 * address Envoy reports in `attributes.source.address.socket_address`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestKeys } from '../../fixtures/gate.ts';
import { send } from '../../fixtures/servers.ts';
import { sign } from '../../fixtures/tokens.ts';
import { checkRequest, GrpcClient, startGrpcSuite, stopGrpcSuite, type Harness } from './helpers.ts';

let keys: TestKeys;
let h: Harness;
let client: GrpcClient;

beforeAll(async () => ({ keys, h, client } = await startGrpcSuite()));
afterAll(() => stopGrpcSuite(client, h));

describe('audit line client address', () => {
  it('case=gRPC: the source address Envoy reports', async () => {
    const req = checkRequest('GET', '/orders/42', { authorization: `Bearer ${await sign(keys.a, { jti: 'c-grpc' })}` }) as { attributes: Record<string, unknown> };
    req.attributes.source = { address: { socket_address: { address: '203.0.113.7', port_value: 51234 } } };
    expect((await client.check(req)).status?.code).toBe(0);
    expect(h.audit.at(-1)).toMatchObject({ transport: 'ext_authz_grpc', decision: 'allow', jti: 'c-grpc', client: '203.0.113.7' });
  });

  it('case=gRPC without a source address: no client field (never a guess)', async () => {
    await client.check(checkRequest('GET', '/orders/42', { authorization: `Bearer ${await sign(keys.a, { jti: 'c-grpc-2' })}` }));
    expect(h.audit.at(-1)).toMatchObject({ transport: 'ext_authz_grpc', jti: 'c-grpc-2' });
    expect(h.audit.at(-1)).not.toHaveProperty('client');
  });

  it('case=ext_authz HTTP: the TCP peer (Envoy)', async () => {
    const r = await send(`http://127.0.0.1:${h.httpPort}`, '/authz/orders/42', { headers: { authorization: `Bearer ${await sign(keys.a, { jti: 'c-http' })}` } });
    expect(r.status).toBe(200);
    expect(h.audit.at(-1)).toMatchObject({ transport: 'ext_authz_http', jti: 'c-http', client: '127.0.0.1' });
  });
});
