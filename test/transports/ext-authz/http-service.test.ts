/**
 * Envoy's HTTP ext_authz service over real loopback sockets (SPEC §7), with requests shaped like
 * Envoy's: the client's method, path_prefix + original path and query, content-length: 0 and
 * Envoy's x-forwarded-* / x-envoy-* headers. Allow is exactly 200; nothing answers 5xx.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestKeys, type TestKeys } from '../../fixtures/gate.ts';
import { ISSUER_A, sign } from '../../fixtures/tokens.ts';
import { decisions, httpCall, startHarness, withGateThrowing, withKeysState, type Harness } from './helpers.ts';
import { OVERRIDE_SPELLINGS } from '../../../src/transports/override-headers.ts';
import { CLIENT_CERT_HEADERS } from '../../../src/transports/proxy/client-cert-headers.ts';

let keys: TestKeys;
let h: Harness;

beforeAll(async () => {
  keys = await makeTestKeys();
  h = await startHarness(keys);
});
afterAll(() => h.close());

/** What Envoy's http_service adds to every check request. */
const ENVOY = ['content-length', '0', 'x-forwarded-for', '10.1.2.3', 'x-forwarded-proto', 'https', 'x-envoy-internal', 'true', 'host', 'orders.internal'];
const bearer = async (jti: string, claims: Record<string, unknown> = {}) => ['authorization', `Bearer ${await sign(keys.a, { jti, ...claims })}`];
const call = (method: string, path: string, headers: string[] = []) => httpCall(h.httpPort, method, path, [...ENVOY, ...headers]);

describe('allow', () => {
  it('is exactly 200 with the identity headers and x-envoy-auth-headers-to-remove', async () => {
    const r = await call('PATCH', '/authz/orders/42?dry=1', await bearer('h-allow'));
    expect(r.status).toBe(200);
    expect(r.headers['x-jit-subject']).toBe('spiffe://prod/ci-deployer');
    expect(r.headers['x-jit-token-id']).toBe('h-allow');
    expect(r.headers['x-jit-issuer']).toBe(ISSUER_A);
    expect(r.headers['x-jit-txn']).toBe('deploy-4711');
    expect(r.headers['x-jit-actor']).toBeUndefined();
    expect(r.headers['x-envoy-auth-headers-to-remove']).toBe(['authorization', 'dpop', ...OVERRIDE_SPELLINGS, ...CLIENT_CERT_HEADERS, 'x-jit-actor', 'x-jit-client-cert-sha256', 'x-jit-spiffe-id'].join(', '));
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.body).toBe('');
  });

  it('sets x-jit-actor when the token has act, and then does not remove it', async () => {
    const r = await call('GET', '/authz/orders/42', await bearer('h-act', { act: { sub: 'spiffe://prod/human/alice' } }));
    expect(r.headers['x-jit-actor']).toBe('spiffe://prod/human/alice');
    expect(r.headers['x-envoy-auth-headers-to-remove']).toBe(['authorization', 'dpop', ...OVERRIDE_SPELLINGS, ...CLIENT_CERT_HEADERS, 'x-jit-client-cert-sha256', 'x-jit-spiffe-id'].join(', '));
  });

  it('a public route: 200, no identity, all five names removed', async () => {
    const r = await call('GET', '/authz/healthz');
    expect(r.status).toBe(200);
    expect(r.headers['x-jit-subject']).toBeUndefined();
    expect(r.headers['x-envoy-auth-headers-to-remove']).toBe(['authorization', 'dpop', ...OVERRIDE_SPELLINGS, ...CLIENT_CERT_HEADERS, 'x-jit-subject', 'x-jit-token-id', 'x-jit-issuer', 'x-jit-txn', 'x-jit-actor', 'x-jit-client-cert-sha256', 'x-jit-spiffe-id'].join(', '));
  });

  it('removes other inbound identity-prefixed headers too', async () => {
    const r = await call('GET', '/authz/orders/42', [...(await bearer('h-stray')), 'X-Jit-Role', 'admin']);
    expect(r.headers['x-envoy-auth-headers-to-remove']).toBe(['authorization', 'dpop', ...OVERRIDE_SPELLINGS, ...CLIENT_CERT_HEADERS, 'x-jit-actor', 'x-jit-client-cert-sha256', 'x-jit-spiffe-id', 'x-jit-role'].join(', '));
  });

  it('drains a request body (with_request_body) and still answers', async () => {
    const body = 'x'.repeat(100_000);
    const r = await httpCall(h.httpPort, 'PATCH', '/authz/orders/42', [...(await bearer('h-body')), 'content-length', String(body.length)], { body });
    expect(r.status).toBe(200);
  });
});

describe('deny: SPEC §3 answers, never 5xx', () => {
  it('401 without a token, with the challenge, JSON body and no-store', async () => {
    const r = await call('GET', '/authz/orders/42');
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer realm="jitgate"');
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.headers['content-type']).toBe('application/json');
    expect(JSON.parse(r.body)).toEqual({ error: 'unauthorized', reason: 'missing_token' });
    expect(r.headers['x-envoy-auth-headers-to-remove']).toBeUndefined();
  });

  it('401 invalid_token for a token signed by a stranger', async () => {
    const r = await call('GET', '/authz/orders/42', ['authorization', `Bearer ${await sign(keys.stranger, { jti: 'h-bad' })}`]);
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body).reason).toBe('bad_signature');
  });

  it('403 outside the grant', async () => {
    const r = await call('DELETE', '/authz/orders/42', await bearer('h-403'));
    expect(r.status).toBe(403);
    expect(r.headers['www-authenticate']).toBe('Bearer realm="jitgate", error="insufficient_scope"');
    expect(JSON.parse(r.body).reason).toBe('method_not_granted');
  });

  it('400 for path tricks and for several Authorization headers (also when Envoy merged them)', async () => {
    expect(JSON.parse((await call('GET', '/authz/orders/42/%2e%2e/43', await bearer('h-dot'))).body).reason).toBe('path_dot_segment');
    const tok = (await bearer('h-two'))[1]!;
    const two = await call('GET', '/authz/orders/42', ['authorization', tok, 'authorization', tok]);
    expect(two.status).toBe(400);
    expect(JSON.parse(two.body).reason).toBe('multiple_authorization');
    const merged = await call('GET', '/authz/orders/42', ['authorization', `${tok},${tok}`]);
    expect(JSON.parse(merged.body).reason).toBe('multiple_authorization');
  });

  it('the 503 cases answer 403 with the same reason', async () => {
    const b = await bearer('h-503');
    await withKeysState(h, 'loading', async () => {
      const r = await call('GET', '/authz/orders/42', b);
      expect(r.status).toBe(403);
      expect(JSON.parse(r.body)).toEqual({ error: 'unavailable', reason: 'keys_unavailable' });
      expect(h.audit.at(-1)).toMatchObject({ transport: 'ext_authz_http', reason: 'keys_unavailable', status: 403 });
    });
  });

  it.each(['rejects', 'throws'] as const)('a decision that %s answers 403 internal_error, not 500', async (how) => {
    const b = await bearer(`h-boom-${how}`);
    await withGateThrowing(
      h,
      async () => {
        const r = await call('GET', '/authz/orders/42', b);
        expect(r.status).toBe(403);
        expect(JSON.parse(r.body).reason).toBe('internal_error');
      },
      how,
    );
    expect((await call('GET', '/authz/orders/42', b)).status).toBe(200);
  });
});

describe('path_prefix', () => {
  it('is stripped exactly once; the query passes through', async () => {
    const tok = await bearer('h-prefix');
    expect((await call('GET', '/authz/orders/42?x=/authz', tok)).status).toBe(200);
    // The prefix is not a path segment of the original request.
    expect(JSON.parse((await call('GET', '/authz/authz/orders/42', tok)).body).reason).toBe('path_not_granted');
  });

  it('a path outside the prefix is not something Envoy sends → 400', async () => {
    for (const p of ['/orders/42', '/authzorders/42', '/authz']) {
      const r = await call('GET', p, await bearer('h-outside'));
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body).reason).toBe('bad_request_target');
    }
  });

  it('X-Forwarded-Uri / X-Original-URI mean nothing to the Envoy HTTP service', async () => {
    const r = await call('GET', '/authz/orders/43', [...(await bearer('h-xfu')), 'x-forwarded-uri', '/orders/42', 'x-original-uri', '/orders/42']);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).reason).toBe('path_not_granted');
  });
});

describe('observability', () => {
  it('one audit line and one metric sample per check, labelled ext_authz_http', async () => {
    const before = await decisions(h.ctx.metrics, 'ext_authz_http', 'granted');
    const lines = h.audit.length;
    await call('GET', '/authz/orders/42/items?page=2', await bearer('h-obs'));
    expect(await decisions(h.ctx.metrics, 'ext_authz_http', 'granted')).toBe(before + 1);
    expect(h.audit.length).toBe(lines + 1);
    expect(h.audit.at(-1)).toMatchObject({ transport: 'ext_authz_http', decision: 'allow', reason: 'granted', status: 200, method: 'GET', path: '/orders/42/items', jti: 'h-obs', grant: 0 });
    expect(JSON.stringify(h.audit)).not.toContain('Bearer');
  });
});
