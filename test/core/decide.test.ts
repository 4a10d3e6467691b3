/**
 * The decision core, end to end through a real Gate over real key files: every row of SPEC §1
 * and every 401/403/503 reason, asserted by reason code.
 */
import { appendFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditIdsOf, type Decision } from '../../src/core/decision.ts';
import { normalizeTyp } from '../../src/core/policy.ts';
import { makeKey } from '../fixtures/keys.ts';
import { bearer, input, makeGate, makeTestKeys, type TestGate, type TestKeys } from '../fixtures/gate.ts';
import { AUDIENCE, b64u, forge, grantPayload, ISSUER_A, ISSUER_B, LOCATION, NOW, sign, signRaw } from '../fixtures/tokens.ts';

let keys: TestKeys;
let t: TestGate;

beforeAll(async () => {
  keys = await makeTestKeys();
  t = await makeGate(keys);
});
afterAll(() => t.gate.stop());

function decide(method: string, target: string, token?: string) {
  return t.gate.decide(input(method, target, token === undefined ? undefined : bearer(token)));
}

function reasonOf(d: Decision): string {
  return `${d.kind}:${d.reason}`;
}

describe('allow', () => {
  it('allows a method and path inside the grant and says which entry matched', async () => {
    const d = await decide('GET', '/orders/42/items?limit=5', await sign(keys.a));
    expect(reasonOf(d)).toBe('allow:granted');
    if (d.kind !== 'allow') throw new Error('unreachable');
    expect(d.path).toBe('/orders/42/items');
    expect(d.query).toBe('?limit=5');
    expect(d.grantIndex).toBe(0);
    expect(d.token?.sub).toBe('spiffe://prod/ci-deployer');
    expect(d.token?.identity).toEqual([
      ['x-jit-subject', 'spiffe://prod/ci-deployer'],
      ['x-jit-token-id', 'jti-1'],
      ['x-jit-issuer', ISSUER_A],
      ['x-jit-txn', 'deploy-4711'],
    ]);
    expect(d.token?.identityUnset).toEqual(['x-jit-actor']);
  });

  it('verifies EdDSA tokens of the same issuer', async () => {
    expect(reasonOf(await decide('PATCH', '/orders/42', await sign(keys.aEd, { jti: 'ed' })))).toBe('allow:granted');
  });

  it('serves a second request from the cache without verifying again', async () => {
    const token = await sign(keys.a, { jti: 'cached' });
    const before = { ...t.gate.cache.stats };
    await decide('GET', '/orders/42', token);
    await decide('GET', '/orders/42', token);
    expect(t.gate.cache.stats.misses - before.misses).toBe(1);
    expect(t.gate.cache.stats.hits - before.hits).toBe(1);
  });

  it('answers a cached token and pre-crypto refusals synchronously (no promise on the hot path); a signature check returns a promise', async () => {
    const token = await sign(keys.a, { jti: 'sync-hit' });
    const miss = decide('GET', '/orders/42', token);
    expect(miss).toBeInstanceOf(Promise);
    expect(reasonOf(await miss)).toBe('allow:granted');
    const hit = decide('GET', '/orders/42', token);
    expect(hit).not.toBeInstanceOf(Promise);
    expect(reasonOf(hit as Decision)).toBe('allow:granted');
    const outside = decide('GET', '/orders/43', token);
    expect(outside).not.toBeInstanceOf(Promise);
    expect(reasonOf(outside as Decision)).toBe('deny:path_not_granted');
    // Refusals before any key work are synchronous too: attack traffic costs no promise.
    const garbage = decide('GET', '/orders/42', 'not-a-jwt');
    expect(garbage).not.toBeInstanceOf(Promise);
    expect(reasonOf(garbage as Decision)).toBe('deny:malformed_token');
    const badSignature = decide('GET', '/orders/42', `${token.slice(0, token.lastIndexOf('.'))}.${'A'.repeat(86)}`);
    expect(badSignature).toBeInstanceOf(Promise);
    expect(reasonOf(await badSignature)).toBe('deny:bad_signature');
  });

  it('lets public routes through without a token', async () => {
    expect(reasonOf(await decide('GET', '/healthz'))).toBe('allow:public');
    expect(reasonOf(await decide('POST', '/healthz'))).toBe('deny:missing_token');
  });

  it('maps action names through grant.actions and never implies HEAD from GET', async () => {
    const read = await sign(keys.a, { jti: 'read', authorization_details: [{ type: 'jit_grant', actions: ['read'], paths: ['/r/**'] }] });
    expect(reasonOf(await decide('HEAD', '/r/x', read))).toBe('allow:granted');
    const get = await sign(keys.a, { jti: 'get', authorization_details: [{ type: 'jit_grant', actions: ['GET'], paths: ['/r/**'] }] });
    expect(reasonOf(await decide('GET', '/r/x', get))).toBe('allow:granted');
    expect(reasonOf(await decide('HEAD', '/r/x', get))).toBe('deny:method_not_granted');
  });

  it('treats several entries as alternatives and reports the matching index', async () => {
    const tok = await sign(keys.a, {
      jti: 'alt',
      authorization_details: [
        { type: 'other', anything: true },
        { type: 'jit_grant', actions: ['GET'], paths: ['/a'] },
        { type: 'jit_grant', actions: ['DELETE'], paths: ['/b/*'] },
      ],
    });
    const d = await decide('DELETE', '/b/1', tok);
    expect(d.kind === 'allow' && d.grantIndex).toBe(2);
  });

  it('accepts aud as an array containing the audience and typ case-insensitively with application/', async () => {
    const tok = await sign(keys.a, { jti: 'aud-arr', aud: ['x', AUDIENCE] }, { typ: 'application/JIT+JWT' });
    expect(reasonOf(await decide('GET', '/orders/42', tok))).toBe('allow:granted');
  });
});

describe('403 insufficient_scope', () => {
  it.each([
    ['GET', '/orders/43', 'path_not_granted'],
    ['GET', '/orders/421', 'path_not_granted'],
    ['GET', '/Orders/42', 'path_not_granted'],
    ['DELETE', '/orders/42', 'method_not_granted'],
    ['HEAD', '/orders/42', 'method_not_granted'],
  ])('%s %s → %s', async (method, target, reason) => {
    const d = await decide(method, target, await sign(keys.a, { jti: `scope-${method}-${target}` }));
    expect(reasonOf(d)).toBe(`deny:${reason}`);
    expect(d.kind === 'deny' && d.token?.jti).toBe(`scope-${method}-${target}`);
  });

  it('a token without a counting entry allows nothing', async () => {
    expect(reasonOf(await decide('GET', '/orders/42', await sign(keys.a, { jti: 'none', authorization_details: [] })))).toBe('deny:no_grant');
    const other = await sign(keys.a, { jti: 'other', authorization_details: [{ type: 'payment_initiation', actions: ['GET'], paths: ['/**'] }] });
    expect(reasonOf(await decide('GET', '/orders/42', other))).toBe('deny:no_grant');
  });

  it('an entry whose locations omit service.location does not count', async () => {
    const tok = await sign(keys.a, { jti: 'loc', authorization_details: [{ type: 'jit_grant', actions: ['GET'], paths: ['/**'], locations: ['https://elsewhere'] }] });
    expect(reasonOf(await decide('GET', '/orders/42', tok))).toBe('deny:no_grant');
    const ok = await sign(keys.a, { jti: 'loc2', authorization_details: [{ type: 'jit_grant', actions: ['GET'], paths: ['/**'], locations: ['https://elsewhere', LOCATION] }] });
    expect(reasonOf(await decide('GET', '/orders/42', ok))).toBe('allow:granted');
  });
});

describe('401 invalid_token', () => {
  it('no token, or another scheme → missing_token; an empty bearer → malformed_token', async () => {
    expect(reasonOf(await decide('GET', '/orders/42'))).toBe('deny:missing_token');
    expect(reasonOf(await t.gate.decide(input('GET', '/orders/42', 'Basic dXNlcjpwYXNz')))).toBe('deny:missing_token');
    expect(reasonOf(await t.gate.decide(input('GET', '/orders/42', 'Bearer ')))).toBe('deny:malformed_token');
  });

  it('accepts the bearer scheme in any case', async () => {
    const tok = await sign(keys.a, { jti: 'case' });
    expect(reasonOf(await t.gate.decide(input('GET', '/orders/42', `bEaReR ${tok}`)))).toBe('allow:granted');
  });

  it.each([
    ['two segments', 'a.b'],
    ['four segments', 'a.b.c.d'],
    ['empty signature', 'a.b.'],
    ['bad base64url', 'a+b.c.d'],
    ['header not JSON', `${b64u('nope')}.${b64u({})}.AAAA`],
    ['payload not JSON', `${b64u({ alg: 'ES256' })}.${b64u('nope')}.AAAA`],
    ['JWE (five parts)', `${b64u({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.a.b.c.d`],
  ])('malformed: %s', async (_name, token) => {
    expect(reasonOf(await decide('GET', '/orders/42', token))).toBe('deny:malformed_token');
  });

  it('refuses tokens over the size limit before parsing', async () => {
    expect(reasonOf(await decide('GET', '/orders/42', `${'a'.repeat(9000)}.b.c`))).toBe('deny:token_too_large');
  });

  it.each(['none', 'None', 'NONE', 'HS256', 'HS512', 'RS512'])('alg %s is refused', async (alg) => {
    expect(reasonOf(await decide('GET', '/orders/42', forge({ alg, kid: 'a-es256', typ: 'jit+jwt' }, grantPayload())))).toBe('deny:alg_not_allowed');
  });

  it('alg not in this issuer\'s allowlist is refused even if another issuer allows it', async () => {
    const tok = await sign(keys.aEd, { iss: ISSUER_B, jti: 'ed-b' });
    expect(reasonOf(await decide('GET', '/orders/42', tok))).toBe('deny:alg_not_allowed');
  });

  it('HS256 signed with the issuer public key as the HMAC secret is refused', async () => {
    const { createHmac } = await import('node:crypto');
    const head = `${b64u({ alg: 'HS256', kid: 'a-es256', typ: 'jit+jwt' })}.${b64u(grantPayload())}`;
    const mac = createHmac('sha256', JSON.stringify(keys.a.publicJwk)).update(head).digest('base64url');
    expect(reasonOf(await decide('GET', '/orders/42', `${head}.${mac}`))).toBe('deny:alg_not_allowed');
  });

  it('an embedded jwk / jku / x5u header is never used to find the key', async () => {
    const attacker = await makeKey('ES256', 'evil');
    for (const extra of [
      { jwk: attacker.publicJwk },
      { jku: 'http://127.0.0.1:1/jwks.json' },
      { x5u: 'http://127.0.0.1:1/cert.pem' },
    ]) {
      expect(reasonOf(await decide('GET', '/orders/42', await sign(attacker, { jti: 'jwk' }, extra)))).toBe('deny:unknown_key');
    }
    // Same kid as a real key, signed by the attacker's key and carrying its jwk: signature fails.
    const spoof = await sign({ ...attacker, kid: 'a-es256' }, { jti: 'jwk2' }, { jwk: attacker.publicJwk });
    expect(reasonOf(await decide('GET', '/orders/42', spoof))).toBe('deny:bad_signature');
  });

  it('an unknown crit is refused (and so is any crit, b64:false included)', async () => {
    const crit = await signRaw(keys.a, { crit: ['exp-ext'], 'exp-ext': 1 } as never, JSON.stringify(grantPayload())).catch(() => forge({ alg: 'ES256', kid: 'a-es256', typ: 'jit+jwt', crit: ['exp-ext'], 'exp-ext': 1 }, grantPayload()));
    expect(reasonOf(await decide('GET', '/orders/42', crit))).toBe('deny:unsupported_crit');
    const b64 = forge({ alg: 'ES256', kid: 'a-es256', typ: 'jit+jwt', crit: ['b64'], b64: false }, grantPayload());
    expect(reasonOf(await decide('GET', '/orders/42', b64))).toBe('deny:unsupported_crit');
  });

  it('a token signed by issuer B but claiming issuer A is refused (keys never shared)', async () => {
    const tok = await sign({ ...keys.b, kid: 'a-es256' }, { jti: 'iso' });
    expect(reasonOf(await decide('GET', '/orders/42', tok))).toBe('deny:bad_signature');
    const kidB = await sign(keys.b, { jti: 'iso2' });
    expect(reasonOf(await decide('GET', '/orders/42', kidB))).toBe('deny:unknown_key');
  });

  it('issuer B\'s own tokens verify with B\'s key', async () => {
    expect(reasonOf(await decide('GET', '/orders/42', await sign(keys.b, { iss: ISSUER_B, jti: 'b-ok' })))).toBe('allow:granted');
  });

  it('a bad signature and an unknown kid have their own reasons', async () => {
    const good = await sign(keys.a, { jti: 'sig' });
    const [h, p] = good.split('.');
    const other = (await sign(keys.a, { jti: 'sig-other' })).split('.')[2];
    expect(reasonOf(await decide('GET', '/orders/42', `${h}.${p}.${other}`))).toBe('deny:bad_signature');
    expect(reasonOf(await decide('GET', '/orders/42', await sign(keys.stranger, { jti: 'strange' })))).toBe('deny:bad_signature');
    expect(reasonOf(await decide('GET', '/orders/42', await sign({ ...keys.a, kid: 'nope' }, { jti: 'kid' })))).toBe('deny:unknown_key');
  });

  it('ECDSA r=s=0 (psychic signature) is a bad signature', async () => {
    const zero = Buffer.alloc(64).toString('base64url');
    const tok = forge({ alg: 'ES256', kid: 'a-es256', typ: 'jit+jwt' }, grantPayload(), zero);
    expect(reasonOf(await decide('GET', '/orders/42', tok))).toBe('deny:bad_signature');
  });

  it.each([
    ['unknown iss', { iss: 'https://evil' }, 'unknown_issuer'],
    ['iss missing', { iss: undefined }, 'invalid_claims'],
    ['aud missing', { aud: undefined }, 'wrong_audience'],
    ['aud other', { aud: 'payments' }, 'wrong_audience'],
    ['aud array without us', { aud: ['payments', 'ORDERS'] }, 'wrong_audience'],
    ['aud number', { aud: 5 }, 'invalid_claims'],
    ['sub missing', { sub: undefined }, 'invalid_claims'],
    ['sub empty', { sub: '' }, 'invalid_claims'],
    ['sub with CRLF', { sub: 'a\r\nx-jit-subject: admin' }, 'invalid_claims'],
    ['jti missing', { jti: undefined }, 'invalid_claims'],
    ['jti number', { jti: 5 }, 'invalid_claims'],
    ['iat missing', { iat: undefined }, 'invalid_claims'],
    ['iat string', { iat: String(NOW) }, 'invalid_claims'],
    ['exp missing', { exp: undefined }, 'invalid_claims'],
    ['exp string', { exp: String(NOW + 60) }, 'invalid_claims'],
    ['nbf string', { nbf: 'soon' }, 'invalid_claims'],
    ['txn number', { txn: 7 }, 'invalid_claims'],
    ['act without sub', { act: { iss: 'x' } }, 'invalid_claims'],
    ['expired', { iat: NOW - 600, exp: NOW - 10 }, 'expired'],
    ['exactly at exp + tolerance', { iat: NOW - 300, exp: NOW - 5 }, 'expired'],
    ['not yet valid', { nbf: NOW + 60 }, 'not_yet_valid'],
    ['issued in the future', { iat: NOW + 60, exp: NOW + 120 }, 'issued_in_future'],
    ['too long-lived', { exp: NOW + 15 * 60 + 1 }, 'lifetime_exceeded'],
    ['huge exp', { exp: 1e308 }, 'lifetime_exceeded'],
    ['negative iat', { iat: -1e12 }, 'lifetime_exceeded'],
    // DPoP-bound tokens verify now; sent with the Bearer scheme they are refused (test/core/dpop.test.ts has the rest).
    ['cnf-bound, sent as Bearer', { cnf: { jkt: 'abc' } }, 'dpop_bearer_scheme'],
    ['authorization_details missing', { authorization_details: undefined }, 'invalid_grant'],
    ['authorization_details object', { authorization_details: { type: 'jit_grant' } }, 'invalid_grant'],
    ['entry without type', { authorization_details: [{ actions: ['GET'], paths: ['/x'] }] }, 'invalid_grant'],
    ['actions not array', { authorization_details: [{ type: 'jit_grant', actions: 'GET', paths: ['/x'] }] }, 'invalid_grant'],
    ['paths empty', { authorization_details: [{ type: 'jit_grant', actions: ['GET'], paths: [] }] }, 'invalid_grant'],
    ['bad pattern', { authorization_details: [{ type: 'jit_grant', actions: ['GET'], paths: ['/a/../b'] }] }, 'invalid_grant'],
    ['regex pattern', { authorization_details: [{ type: 'jit_grant', actions: ['GET'], paths: ['/a/x*'] }] }, 'invalid_grant'],
    ['one good one malformed entry', { authorization_details: [{ type: 'jit_grant', actions: ['GET'], paths: ['/orders/42'] }, { type: 'jit_grant', actions: ['GET'], paths: [5] }] }, 'invalid_grant'],
  ])('%s → %s', async (_name, claims, reason) => {
    const tok = await sign(keys.a, { jti: `c-${_name}`, ...claims });
    expect(reasonOf(await decide('GET', '/orders/42', tok))).toBe(`deny:${reason}`);
  });

  it('a token refused after its signature verified names who it is (for the audit line); one refused before names no one', async () => {
    const expired = await decide('GET', '/orders/42', await sign(keys.a, { jti: 'ids-expired', iat: NOW - 600, exp: NOW - 10 }));
    expect(reasonOf(expired)).toBe('deny:expired');
    expect(auditIdsOf(expired)).toEqual({ iss: ISSUER_A, sub: 'spiffe://prod/ci-deployer', jti: 'ids-expired', txn: 'deploy-4711', act: undefined });
    // Only the claims that are strings: a numeric jti is not named.
    const badJti = await decide('GET', '/orders/42', await sign(keys.a, { jti: 5, act: { sub: 'spiffe://prod/agent' }, aud: 'billing' }));
    expect(reasonOf(badJti)).toBe('deny:invalid_claims');
    expect(auditIdsOf(badJti)).toEqual({ iss: ISSUER_A, sub: 'spiffe://prod/ci-deployer', jti: undefined, txn: 'deploy-4711', act: { sub: 'spiffe://prod/agent' } });
    const badGrant = await decide('GET', '/orders/42', await sign(keys.a, { jti: 'ids-grant', authorization_details: { type: 'jit_grant' } }));
    expect([reasonOf(badGrant), auditIdsOf(badGrant)?.jti]).toEqual(['deny:invalid_grant', 'ids-grant']);
    // The same claims under another key's signature: nothing the issuer signed, so no name.
    const forged = await decide('GET', '/orders/42', await sign(keys.stranger, { jti: 'ids-forged', iat: NOW - 600, exp: NOW - 10 }));
    expect(reasonOf(forged)).toBe('deny:bad_signature');
    expect(auditIdsOf(forged)).toBeNull();
    const unsigned = await decide('GET', '/orders/42', forge({ alg: 'ES256', kid: 'a-es256' }, { iss: ISSUER_A, sub: 'spiffe://prod/admin', jti: 'ids-unsigned' }));
    expect(auditIdsOf(unsigned)).toBeNull();
  });

  it('tolerates clock skew within clock_tolerance', async () => {
    expect(reasonOf(await decide('GET', '/orders/42', await sign(keys.a, { jti: 'skew1', iat: NOW + 4, exp: NOW + 60 })))).toBe('allow:granted');
    expect(reasonOf(await decide('GET', '/orders/42', await sign(keys.a, { jti: 'skew2', iat: NOW - 300, exp: NOW - 4 })))).toBe('allow:granted');
  });

  it('typ names a media type (RFC 7515 §4.1.9): "application/" goes in front only of a value without "/" (a review: example/jwt matched application/example/jwt)', () => {
    expect(normalizeTyp('JIT+JWT')).toBe(normalizeTyp('application/jit+jwt'));
    expect(normalizeTyp('example/jwt')).not.toBe(normalizeTyp('application/example/jwt'));
    expect(normalizeTyp('Application/Example/JWT')).toBe('application/example/jwt');
  });

  it('wrong typ is refused when the issuer sets typ', async () => {
    expect(reasonOf(await decide('GET', '/orders/42', await sign(keys.a, { jti: 'typ' }, { typ: 'JWT' })))).toBe('deny:wrong_typ');
    expect(reasonOf(await decide('GET', '/orders/42', await sign(keys.a, { jti: 'typ2' }, { typ: undefined })))).toBe('deny:wrong_typ');
    // Issuer B does not set typ: any typ passes.
    expect(reasonOf(await decide('GET', '/orders/42', await sign(keys.b, { iss: ISSUER_B, jti: 'typ3' }, { typ: 'JWT' })))).toBe('allow:granted');
  });

  it('a cached token expires on the clock, not in the cache', async () => {
    const tok = await sign(keys.a, { jti: 'exp-cache', exp: NOW + 60 });
    expect(reasonOf(await decide('GET', '/orders/42', tok))).toBe('allow:granted');
    t.clock.advance(65_000);
    try {
      expect(reasonOf(await decide('GET', '/orders/42', tok))).toBe('deny:expired');
    } finally {
      t.clock.set(NOW * 1000);
    }
  });
});

describe('revocation', () => {
  it('refuses by jti, by sub issued before a cut-off, and by txn — also for cached tokens', async () => {
    const byJti = await sign(keys.a, { jti: 'rev-jti' });
    const bySub = await sign(keys.a, { jti: 'rev-sub', sub: 'spiffe://prod/leaky', iat: NOW - 10 });
    const bySubLater = await sign(keys.a, { jti: 'rev-sub-later', sub: 'spiffe://prod/leaky', iat: NOW });
    const byTxn = await sign(keys.a, { jti: 'rev-txn', txn: 'task-9' });
    for (const tok of [byJti, bySub, bySubLater, byTxn]) expect(reasonOf(await decide('GET', '/orders/42', tok))).toBe('allow:granted');

    await appendFile(
      t.revokedFile,
      ['{"jti":"rev-jti"}', '{"sub":"spiffe://prod/leaky","before":' + (NOW - 5) + '}', 'not json', '{"txn":"task-9"}', ''].join('\n'),
    );
    const src = t.gate.revocation.sources[0] as unknown as { reload(): Promise<void> };
    await src.reload();

    expect(reasonOf(await decide('GET', '/orders/42', byJti))).toBe('deny:revoked');
    expect(reasonOf(await decide('GET', '/orders/42', bySub))).toBe('deny:revoked');
    expect(reasonOf(await decide('GET', '/orders/42', bySubLater))).toBe('allow:granted');
    expect(reasonOf(await decide('GET', '/orders/42', byTxn))).toBe('deny:revoked');
  });
});

describe('400 before any token work', () => {
  it.each([
    ['/orders/42/../43', 'path_dot_segment'],
    ['/orders/42/%2e%2e/43', 'path_dot_segment'],
    ['/orders/42/..;/43', 'path_dot_segment'],
    ['/orders/42%2F..%2F43', 'path_encoded_slash'],
    ['/orders//42', 'path_empty_segment'],
    ['/orders\\42', 'path_backslash'],
    ['http://evil/orders/42', 'bad_request_target'],
  ])('%s → %s', async (target, reason) => {
    expect(reasonOf(await decide('GET', target, await sign(keys.a, { jti: 'p' })))).toBe(`deny:${reason}`);
  });

  it('several Authorization headers → 400', async () => {
    const d = await t.gate.decide(input('GET', '/orders/42', 'Bearer x', { authorizationCount: 2 }));
    expect(reasonOf(d)).toBe('deny:multiple_authorization');
  });

  it('a method-override header → 400 unless configured to strip', async () => {
    const tok = await sign(keys.a, { jti: 'mo' });
    expect(reasonOf(await t.gate.decide(input('GET', '/orders/42', bearer(tok), { methodOverride: true })))).toBe('deny:method_override');
    const strip = await makeGate(keys, (c) => (c.headers = { method_override: 'strip' }));
    expect(reasonOf(await strip.gate.decide(input('GET', '/orders/42', bearer(tok), { methodOverride: true })))).toBe('allow:granted');
    strip.gate.stop();
  });

  it('an invalid method token → 400', async () => {
    expect(reasonOf(await t.gate.decide(input('GE T', '/orders/42')))).toBe('deny:bad_method');
  });

  // SPEC §2: CONNECT is 400 whatever the token grants. Before the fix a token granting CONNECT was
  // allowed through forward-auth and ext_authz, which hand the method over as data.
  it.each(['CONNECT', 'connect', 'Connect'])('method %s → 400 connect_method, synchronously, even with a token that grants CONNECT', async (method) => {
    const token = await sign(keys.a, {
      jti: `connect-${method}`,
      authorization_details: [{ type: 'jit_grant', actions: ['CONNECT', 'connect', 'GET'], locations: [LOCATION], paths: ['/orders/42'] }],
    });
    // The same token is allowed for GET (control): only the method is refused.
    expect(reasonOf(await decide('GET', '/orders/42', token))).toBe('allow:granted');
    const d = decide(method, '/orders/42', token);
    expect(d).not.toBeInstanceOf(Promise);
    expect(reasonOf(d as Decision)).toBe('deny:connect_method');
    // Before any token work: no token, or a garbage one, gets the same 400 (not 401).
    expect(reasonOf(decide(method, '/orders/42') as Decision)).toBe('deny:connect_method');
    expect(reasonOf(decide(method, 'orders.internal:443', 'not-a-jwt') as Decision)).toBe('deny:connect_method');
  });

  it('CONNECT to a public path → 400 connect_method (judged before routes); a longer method is not mistaken for it', async () => {
    const g = await makeGate(keys, (c) => {
      c.public = [{ methods: ['GET', 'CONNECTX'], path: '/healthz' }];
    });
    try {
      expect(reasonOf(await g.gate.decide(input('CONNECTX', '/healthz')))).toBe('allow:public'); // 8 characters: not CONNECT
      expect(reasonOf(await g.gate.decide(input('CONNECT', '/healthz')))).toBe('deny:connect_method');
    } finally {
      g.gate.stop();
    }
  });

  it('config naming CONNECT in grant.actions or public methods is refused, naming the key', async () => {
    await expect(makeGate(keys, (c) => (c.grant.actions.tunnel = ['CONNECT']))).rejects.toThrow(/grant\.actions\.tunnel\[0\]: CONNECT is never allowed/);
    await expect(makeGate(keys, (c) => (c.public = [{ methods: ['GET', 'CONNECT'], path: '/healthz' }]))).rejects.toThrow(/public\[0\]\.methods\[1\]: CONNECT is never allowed/);
  });
});

describe('503 fails closed', () => {
  it('keys not loaded → keys_unavailable, never 401 or allow', async () => {
    const gate = await makeGate(keys);
    const k = gate.gate.issuerKeys[0]!;
    const orig = k.state.bind(k);
    (k as unknown as { state: () => string }).state = () => "loading";
    try {
      const d = await gate.gate.decide(input('GET', '/orders/42', bearer(await sign(keys.a, { jti: 'u' }))));
      expect(reasonOf(d)).toBe('unavailable:keys_unavailable');
      expect(gate.gate.readiness().ready).toBe(false);
    } finally {
      (k as unknown as { state: typeof orig }).state = orig;
      gate.gate.stop();
    }
  });
});
