/**
 * Forward-auth (SPEC §7): X-Forwarded-Method/-Uri (or X-Original-*) believed only from
 * trusted_proxies. The test client binds its local address: 127.0.0.1 is the trusted proxy,
 * 127.0.0.2 is anyone else on the machine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestKeys, type TestKeys } from '../../fixtures/gate.ts';
import { sign } from '../../fixtures/tokens.ts';
import { decisions, httpCall, startHarness, withGateThrowing, withKeysState, type Harness } from './helpers.ts';

let keys: TestKeys;
let h: Harness;

beforeAll(async () => {
  keys = await makeTestKeys();
  h = await startHarness(keys);
});
afterAll(() => h.close());

const TRUSTED = '127.0.0.1';
const UNTRUSTED = '127.0.0.2';
const bearer = async (jti: string) => ['authorization', `Bearer ${await sign(keys.a, { jti })}`];
const fa = (from: string, headers: string[], path = '/forward-auth') => httpCall(h.httpPort, 'GET', path, headers, { localAddress: from });
const reasonOf = (r: { body: string }) => JSON.parse(r.body).reason as string;

describe('from a trusted proxy', () => {
  it('allows with 200 and the identity headers (X-Forwarded-*, Traefik/Caddy style)', async () => {
    const r = await fa(TRUSTED, ['x-forwarded-method', 'PATCH', 'x-forwarded-uri', '/orders/42?x=1', ...(await bearer('f-allow'))]);
    expect(r.status).toBe(200);
    expect(r.headers['x-jit-token-id']).toBe('f-allow');
    expect(r.headers['x-jit-subject']).toBe('spiffe://prod/ci-deployer');
    expect(r.headers['cache-control']).toBe('no-store');
  });

  it('a client Expect other than 100-continue passed on by the proxy is ignored, not a bare 417 (forward-auth and the HTTP service)', async () => {
    const r = await fa(TRUSTED, ['expect', 'foo', 'x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/42', ...(await bearer('f-expect'))]);
    expect([r.status, r.headers['x-jit-token-id']]).toEqual([200, 'f-expect']);
    const envoy = await httpCall(h.httpPort, 'GET', '/authz/orders/43', ['expect', 'foo', ...(await bearer('f-expect-2'))]);
    expect([envoy.status, reasonOf(envoy)]).toEqual([403, 'path_not_granted']);
  });

  it('accepts X-Original-Method / X-Original-URI (nginx style), and both families when they agree', async () => {
    expect((await fa(TRUSTED, ['x-original-method', 'GET', 'x-original-uri', '/orders/42', ...(await bearer('f-orig'))])).status).toBe(200);
    const both = ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/42', 'x-original-method', 'GET', 'x-original-uri', '/orders/42'];
    expect((await fa(TRUSTED, [...both, ...(await bearer('f-both'))])).status).toBe(200);
  });

  it('denies with the SPEC §3 statuses: 401, 403, 400 — and 503 stays 503 here', async () => {
    const none = await fa(TRUSTED, ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/42']);
    expect([none.status, none.headers['www-authenticate'], reasonOf(none)]).toEqual([401, 'Bearer realm="jitgate"', 'missing_token']);
    const scope = await fa(TRUSTED, ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/43', ...(await bearer('f-403'))]);
    expect([scope.status, reasonOf(scope)]).toEqual([403, 'path_not_granted']);
    const dot = await fa(TRUSTED, ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/42/..;/43', ...(await bearer('f-dot'))]);
    expect([dot.status, reasonOf(dot)]).toEqual([400, 'path_dot_segment']);
    const b = await bearer('f-503');
    await withKeysState(h, 'loading', async () => {
      const u = await fa(TRUSTED, ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/42', ...b]);
      expect([u.status, reasonOf(u)]).toEqual([503, 'keys_unavailable']);
    });
  });

  it.each(['rejects', 'throws'] as const)('a decision that %s → 503 internal_error (closed), and the next request is judged again', async (how) => {
    const headers = ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/42', ...(await bearer(`f-boom-${how}`))];
    await withGateThrowing(
      h,
      async () => {
        const r = await fa(TRUSTED, headers);
        expect([r.status, reasonOf(r)]).toEqual([503, 'internal_error']);
      },
      how,
    );
    expect((await fa(TRUSTED, headers)).status).toBe(200);
  });

  it('a missing method or URI → 400 missing_attributes (no fallback to the subrequest method)', async () => {
    for (const headers of [[], ['x-forwarded-uri', '/orders/42'], ['x-original-method', 'GET'], ['x-forwarded-method', '', 'x-forwarded-uri', '/orders/42']]) {
      const r = await fa(TRUSTED, [...headers, ...(await bearer('f-missing'))]);
      expect([r.status, reasonOf(r)]).toEqual([400, 'missing_attributes']);
    }
  });

  it('a client header next to the proxy one (they disagree) or a repeated header → 400, never one silently winning', async () => {
    const spoof = await fa(TRUSTED, ['x-original-method', 'GET', 'x-original-uri', '/orders/43', 'x-forwarded-uri', '/orders/42', ...(await bearer('f-spoof'))]);
    expect([spoof.status, reasonOf(spoof)]).toEqual([400, 'missing_attributes']);
    const twice = await fa(TRUSTED, ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/43', 'x-forwarded-uri', '/orders/42', ...(await bearer('f-twice'))]);
    expect([twice.status, reasonOf(twice)]).toEqual([400, 'missing_attributes']);
  });
});

describe('client-sent identity headers (SPEC §4: forward-auth cannot remove them, so it refuses)', () => {
  const GET42 = ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/42'];

  it.each([
    ['x-jit-subject', 'spoofed'],
    ['X-Jit-Spiffe-Id', 'spiffe://prod/admin'],
    ['X-Jit-Client-Cert-Sha256', 'forged'],
    ['x-jit-role', 'admin'],
    ['X_Jit_Role', 'admin'],
    ['x_jit-actor', 'spiffe://evil'],
    ['X-JIT-', 'bare prefix'],
  ])('%s with a valid token → 400 identity_header, no identity headers in the answer', async (name, value) => {
    const r = await fa(TRUSTED, [...GET42, ...(await bearer('f-idh')), name, value]);
    expect([r.status, reasonOf(r)]).toEqual([400, 'identity_header']);
    expect(r.headers['x-jit-subject']).toBeUndefined();
    expect(h.audit.at(-1)).toMatchObject({ transport: 'forward_auth', decision: 'deny', reason: 'identity_header', path: '/orders/42' });
  });

  it('on a public route too, without a token', async () => {
    const open = await fa(TRUSTED, ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/healthz']);
    expect(open.status).toBe(200);
    const r = await fa(TRUSTED, ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/healthz', 'x-jit-spiffe-id', 'spiffe://prod/admin']);
    expect([r.status, reasonOf(r)]).toEqual([400, 'identity_header']);
  });

  it.each([['X-SSL_Client-Verify', 'SUCCESS'], ['x_ssl_client_cert', 'forged'], ['X-Forwarded_Client-Cert', 'Hash=aa;URI=spiffe://prod/admin'], ['Ssl_Client-Verify', 'SUCCESS']])(
    'a client-certificate header spelled with _ (%s; a CGI backend folds it onto the real name) → 400 identity_header, public routes too (a re-probe)',
    async (name, value) => {
      const r = await fa(TRUSTED, [...GET42, ...(await bearer('f-cert-us')), name, value]);
      expect([r.status, reasonOf(r)]).toEqual([400, 'identity_header']);
      const open = await fa(TRUSTED, ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/healthz', name, value]);
      expect([open.status, reasonOf(open)]).toEqual([400, 'identity_header']);
    },
  );

  it('names that only resemble the prefix pass', async () => {
    const r = await fa(TRUSTED, [...GET42, ...(await bearer('f-idh-ok')), 'x-jitter', '1', 'x-jit', '1', 'a-x-jit-subject', '1']);
    expect([r.status, r.headers['x-jit-token-id']]).toEqual([200, 'f-idh-ok']);
  });

  it('the configured prefix is the one refused', async () => {
    const other = await startHarness(keys, (c) => (c.headers = { prefix: 'x-gate-' }));
    try {
      const call = (headers: string[]) => httpCall(other.httpPort, 'GET', '/forward-auth', headers, { localAddress: TRUSTED });
      const token = ['authorization', `Bearer ${await sign(keys.a, { jti: 'f-idh-prefix' })}`];
      const refused = await call([...GET42, ...token, 'X_Gate_Subject', 'spoofed']);
      expect([refused.status, reasonOf(refused)]).toEqual([400, 'identity_header']);
      const allowed = await call([...GET42, ...token, 'x-jit-subject', 'not an identity header here']);
      expect([allowed.status, allowed.headers['x-gate-token-id']]).toEqual([200, 'f-idh-prefix']);
    } finally {
      await other.close();
    }
  });
});

describe('from any other address', () => {
  it('a spoofed X-Forwarded-Uri is refused: 400 untrusted_forwarded, even with a valid token for that URI', async () => {
    const r = await fa(UNTRUSTED, ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/42', ...(await bearer('f-untrusted'))]);
    expect(r.status).toBe(400);
    expect(reasonOf(r)).toBe('untrusted_forwarded');
    expect(r.headers['x-jit-subject']).toBeUndefined();
    expect(h.audit.at(-1)).toMatchObject({ transport: 'forward_auth', decision: 'deny', reason: 'untrusted_forwarded', status: 400 });
  });

  it('X-Original-URI likewise, and a request with no forwarded headers at all', async () => {
    expect(reasonOf(await fa(UNTRUSTED, ['x-original-method', 'GET', 'x-original-uri', '/orders/42', ...(await bearer('f-u2'))]))).toBe('untrusted_forwarded');
    expect(reasonOf(await fa(UNTRUSTED, await bearer('f-u3')))).toBe('untrusted_forwarded');
  });

  it('counts forward_auth decisions in metrics', async () => {
    expect(await decisions(h.ctx.metrics, 'forward_auth', 'untrusted_forwarded')).toBeGreaterThanOrEqual(3);
    expect(await decisions(h.ctx.metrics, 'forward_auth', 'granted')).toBeGreaterThanOrEqual(3);
  });
});

describe('routing on the shared listener', () => {
  it('only the exact forward-auth path is forward-auth; its query does not matter', async () => {
    const ok = await fa(TRUSTED, ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/42', ...(await bearer('f-q'))], '/forward-auth?rd=https://x');
    expect(ok.status).toBe(200);
    // Not under the /authz prefix and not the forward-auth path: refused by the HTTP service.
    const other = await fa(TRUSTED, ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/42', ...(await bearer('f-q2'))], '/forward-auth/x');
    expect([other.status, reasonOf(other)]).toEqual([400, 'bad_request_target']);
  });
});
