/**
 * DPoP proof-of-possession (RFC 9449 §4.3, §7; SPEC §1 `cnf`, §3): every proof check, end to end
 * through a real Gate on a FixedClock at NOW, asserted by reason code. Requests reach
 * http://orders.internal unless a case says otherwise.
 */
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, CompactSign, decodeJwt, exportJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DpopReplayCache } from '../../src/cache/dpop-replay.ts';
import { VerifiedTokenCache } from '../../src/cache/verified-tokens.ts';
import { publicJwkOf } from '../../src/issuing/key-files.ts';
import { Decider } from '../../src/core/decide.ts';
import type { Decision, DecisionInput } from '../../src/core/decision.ts';
import { DpopNonces } from '../../src/core/dpop-nonce.ts';
import { proofPublicJwk } from '../../src/core/dpop.ts';
import { REASON_CODES, REASONS } from '../../src/core/reasons.ts';
import { accessTokenHash } from '../../src/core/token.ts';
import { ConfigError } from '../../src/errors.ts';
import { inputFromRawHeaders } from '../../src/transports/http-input.ts';
import { render, renderDecision } from '../../src/transports/respond.ts';
import { input, makeGate, makeTestKeys, type TestGate, type TestKeys } from '../fixtures/gate.ts';
import { makeKey, type TestKey } from '../fixtures/keys.ts';
import { b64u, forge, ISSUER_B, NOW, sign } from '../fixtures/tokens.ts';

const HOST = 'orders.internal';
const ORIGIN = `http://${HOST}`;

let keys: TestKeys;
/** The client's DPoP keys; `other` is some other client's. */
let client: TestKey;
let clientEd: TestKey;
let other: TestKey;
let jkt: string;
let jktEd: string;
let t: TestGate;
const gates: TestGate[] = [];

beforeAll(async () => {
  keys = await makeTestKeys();
  [client, clientEd, other] = await Promise.all([makeKey('ES256', 'client'), makeKey('EdDSA', 'client-ed'), makeKey('ES256', 'other')]);
  jkt = await calculateJwkThumbprint(client.publicJwk, 'sha256');
  jktEd = await calculateJwkThumbprint(clientEd.publicJwk, 'sha256');
  t = await gate();
});
afterAll(() => {
  for (const g of gates) g.gate.stop();
});

async function gate(patch: (c: Record<string, any>) => void = () => {}): Promise<TestGate> {
  const g = await makeGate(keys, patch);
  gates.push(g);
  return g;
}

let seq = 0;
interface ProofClaims {
  jti?: unknown;
  htm?: unknown;
  htu?: unknown;
  iat?: unknown;
  /** The access token whose hash becomes `ath`; `ath` overrides. */
  token?: string;
  ath?: unknown;
  nonce?: unknown;
}

/**
 * A proof signed by `key`. Header {typ: dpop+jwt, alg, jwk: key's public part} plus `header`
 * (undefined deletes); payload {jti: fresh, htm: GET, htu: ORIGIN/orders/42, iat: NOW, ath} plus `claims`.
 */
async function proof(key: TestKey, claims: ProofClaims = {}, header: Record<string, unknown> = {}): Promise<string> {
  const { token, ...rest } = claims;
  const payload = clean({
    jti: `proof-${++seq}`,
    htm: 'GET',
    htu: `${ORIGIN}/orders/42`,
    iat: NOW,
    ath: token === undefined ? undefined : accessTokenHash(token),
    ...rest,
  });
  const h = clean({ typ: 'dpop+jwt', alg: key.alg, jwk: publicJwkOf(key.publicJwk), ...header });
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader(h as never).sign(key.privateKey);
}

function clean(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** A grant token of issuer A bound to `boundTo` (default the client's ES256 key). */
function boundToken(jti: string, boundTo: string = jkt, claims: Record<string, unknown> = {}): Promise<string> {
  return sign(keys.a, { jti, cnf: { jkt: boundTo }, ...claims });
}

/** `Authorization: DPoP <token>` with one DPoP header, to http://orders.internal. */
function dpopReq(method: string, target: string, token: string, dpop: string | undefined, extra: Partial<DecisionInput> = {}): DecisionInput {
  return input(method, target, `DPoP ${token}`, { dpop, dpopCount: dpop === undefined ? 0 : 1, host: HOST, ...extra });
}

function reasonOf(d: Decision): string {
  return `${d.kind}:${d.reason}`;
}

async function decideOn(g: TestGate, i: DecisionInput): Promise<string> {
  return reasonOf(await g.gate.decide(i));
}

describe('allow', () => {
  it('a bound token with a valid proof is allowed; the query is not part of htu', async () => {
    const tok = await boundToken('ok-1');
    const d = await t.gate.decide(dpopReq('GET', '/orders/42/items?limit=5', tok, await proof(client, { token: tok, htu: `${ORIGIN}/orders/42/items` })));
    expect(reasonOf(d)).toBe('allow:granted');
    expect(d.kind === 'allow' && d.token?.cnfJkt).toBe(jkt);
  });

  it('the token verification is cached, the proof is checked on every request', async () => {
    const tok = await boundToken('ok-cache');
    const before = { ...t.gate.cache.stats };
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok })))).toBe('allow:granted');
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok })))).toBe('allow:granted');
    expect(t.gate.cache.stats.misses - before.misses).toBe(1);
    expect(t.gate.cache.stats.hits - before.hits).toBe(1);
    // Same cached token, proof by the wrong key: refused although the token itself is cached.
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(other, { token: tok })))).toBe('deny:dpop_key_mismatch');
  });

  it('an EdDSA proof key, the DPoP scheme in any case, typ with application/', async () => {
    const tok = await boundToken('ok-ed', jktEd);
    const p = await proof(clientEd, { token: tok }, { typ: 'application/DPoP+JWT' });
    expect(await decideOn(t, input('GET', '/orders/42', `dpop ${tok}`, { dpop: p, dpopCount: 1, host: HOST }))).toBe('allow:granted');
  });

  it.each([
    ['upper-case scheme and host, default port', 'HTTP://ORDERS.internal:80/orders/42'],
    ['percent-encoded unreserved characters', `${ORIGIN}/orders/%34%32`],
    ['query and fragment', `${ORIGIN}/orders/42?x=1#frag`],
    ['explicit default port, upper-case host', 'http://Orders.Internal:80/orders/42'],
    ['a dot segment, removed as RFC 3986 6.2.2.3 says', `${ORIGIN}/orders/zz/../42`],
  ])('htu is compared after normalization: %s', async (_name, htu) => {
    const tok = await boundToken(`norm-${_name}`);
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, htu })))).toBe('allow:granted');
  });

  it('iat exactly iat_window (60s) before or after now passes', async () => {
    const tok = await boundToken('edge');
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, iat: NOW - 60 })))).toBe('allow:granted');
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, iat: NOW + 60 })))).toBe('allow:granted');
  });

  it('htu with a raw non-ASCII character is no URI: refused; its percent-encoded form matches', async () => {
    const tok = await boundToken('raw-non-ascii');
    expect(await decideOn(t, dpopReq('GET', '/orders/42/%C3%A9', tok, await proof(client, { token: tok, htu: `${ORIGIN}/orders/42/\u00e9` })))).toBe('deny:dpop_htu_mismatch');
    expect(await decideOn(t, dpopReq('GET', '/orders/42/%C3%A9', tok, await proof(client, { token: tok, htu: `${ORIGIN}/orders/42/%c3%a9` })))).toBe('allow:granted');
  });

  it('a valid proof does not widen the grant: outside it is still 403', async () => {
    const tok = await boundToken('scope');
    const p = await proof(client, { token: tok, htm: 'DELETE' });
    expect(await decideOn(t, dpopReq('DELETE', '/orders/42', tok, p))).toBe('deny:method_not_granted');
  });
});

describe('401: each proof check', () => {
  it('a replayed proof is refused', async () => {
    const tok = await boundToken('replay');
    const p = await proof(client, { token: tok });
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, p))).toBe('allow:granted');
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, p))).toBe('deny:dpop_replay');
    // A used jti in a proof that would otherwise pass is a replay too.
    const again = await proof(client, { token: tok, jti: decodeJwt(p).jti });
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, again))).toBe('deny:dpop_replay');
  });

  it('two copies of one proof racing: exactly one passes', async () => {
    const tok = await boundToken('race');
    const p = await proof(client, { token: tok });
    const both = await Promise.all([0, 1].map(() => t.gate.decide(dpopReq('GET', '/orders/42', tok, p))));
    expect(both.map(reasonOf).sort()).toEqual(['allow:granted', 'deny:dpop_replay']);
  });

  it('a refused proof does not use up its jti', async () => {
    const tok = await boundToken('unspent');
    const jti = 'unspent-jti';
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, jti, htm: 'PATCH' })))).toBe('deny:dpop_htm_mismatch');
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, jti })))).toBe('allow:granted');
  });

  it.each<[string, string, (tok: string) => ProofClaims]>([
    ['proof for another method', 'dpop_htm_mismatch', (tok) => ({ token: tok, htm: 'PATCH' })],
    ['htm in lower case', 'dpop_htm_mismatch', (tok) => ({ token: tok, htm: 'get' })],
    ['proof for another path', 'dpop_htu_mismatch', (tok) => ({ token: tok, htu: `${ORIGIN}/orders/43` })],
    ['proof for a path prefix', 'dpop_htu_mismatch', (tok) => ({ token: tok, htu: `${ORIGIN}/orders` })],
    ['proof for another host', 'dpop_htu_mismatch', (tok) => ({ token: tok, htu: 'http://payments.internal/orders/42' })],
    ['proof for another scheme', 'dpop_htu_mismatch', (tok) => ({ token: tok, htu: `https://${HOST}/orders/42` })],
    ['proof for another port', 'dpop_htu_mismatch', (tok) => ({ token: tok, htu: `${ORIGIN}:8080/orders/42` })],
    ['htu with userinfo', 'dpop_htu_mismatch', (tok) => ({ token: tok, htu: `http://u:p@${HOST}/orders/42` })],
    ['htu relative', 'dpop_htu_mismatch', (tok) => ({ token: tok, htu: '/orders/42' })],
    ['htu of another scheme kind', 'dpop_htu_mismatch', (tok) => ({ token: tok, htu: `ftp://${HOST}/orders/42` })],
    // The fifteenth round: forms the WHATWG parser takes but a URI (RFC 3986) is not, or names another host by.
    ['htu with backslashes', 'dpop_htu_mismatch', (tok) => ({ token: tok, htu: `${ORIGIN}\\orders\\42` })],
    ['htu with a leading space', 'dpop_htu_mismatch', (tok) => ({ token: tok, htu: ` ${ORIGIN}/orders/42` })],
    ['htu with a tab in the host', 'dpop_htu_mismatch', (tok) => ({ token: tok, htu: `http://orders.inte\trnal/orders/42` })],
    ['htu without // after the scheme', 'dpop_htu_mismatch', (tok) => ({ token: tok, htu: `http:/${HOST}/orders/42` })],
    ['htu with a percent-encoded host', 'dpop_htu_mismatch', (tok) => ({ token: tok, htu: 'http://orders%2Einternal/orders/42' })],
    ['ath of another token', 'dpop_ath_mismatch', () => ({ token: 'another.access.token' })],
    ['ath missing', 'dpop_proof_claims', () => ({})],
    ['stale iat (61s old)', 'dpop_iat_window', (tok) => ({ token: tok, iat: NOW - 61 })],
    ['future iat (61s ahead)', 'dpop_iat_window', (tok) => ({ token: tok, iat: NOW + 61 })],
    ['iat as a string', 'dpop_proof_claims', (tok) => ({ token: tok, iat: String(NOW) })],
    ['jti missing', 'dpop_proof_claims', (tok) => ({ token: tok, jti: undefined })],
    ['jti empty', 'dpop_proof_claims', (tok) => ({ token: tok, jti: '' })],
    ['jti a number', 'dpop_proof_claims', (tok) => ({ token: tok, jti: 7 })],
    ['jti over 256 characters', 'dpop_proof_claims', (tok) => ({ token: tok, jti: 'j'.repeat(257) })],
    ['htm missing', 'dpop_proof_claims', (tok) => ({ token: tok, htm: undefined })],
    ['htu missing', 'dpop_proof_claims', (tok) => ({ token: tok, htu: undefined })],
  ])('%s → %s', async (name, reason, claims) => {
    const tok = await boundToken(`claims-${name}`);
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, claims(tok))))).toBe(`deny:${reason}`);
  });

  it('a proof by a key other than cnf.jkt → dpop_key_mismatch', async () => {
    const tok = await boundToken('other-key');
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(other, { token: tok })))).toBe('deny:dpop_key_mismatch');
  });

  it('the bound jwk in the header but signed by another key → dpop_proof_signature', async () => {
    const tok = await boundToken('wrong-signer');
    const p = await proof(other, { token: tok }, { jwk: publicJwkOf(client.publicJwk) });
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, p))).toBe('deny:dpop_proof_signature');
  });

  it('a header seen before (cached check, thumbprint and key) still gets its signature and cnf.jkt checked', async () => {
    const tok = await boundToken('cached-header');
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok })))).toBe('allow:granted');
    // Same header bytes (the client's jwk), signed by another key.
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(other, { token: tok }, { jwk: publicJwkOf(client.publicJwk) })))).toBe('deny:dpop_proof_signature');
    // Same header bytes, for a token bound to another key.
    const edBound = await boundToken('cached-header-ed', jktEd);
    expect(await decideOn(t, dpopReq('GET', '/orders/42', edBound, await proof(client, { token: edBound })))).toBe('deny:dpop_key_mismatch');
  });

  it('a tampered payload → dpop_proof_signature', async () => {
    const tok = await boundToken('tamper');
    const [h, , s] = (await proof(client, { token: tok, htm: 'PATCH' })).split('.');
    const forged = `${h}.${b64u({ jti: 'tampered', htm: 'GET', htu: `${ORIGIN}/orders/42`, iat: NOW, ath: accessTokenHash(tok) })}.${s}`;
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, forged))).toBe('deny:dpop_proof_signature');
  });

  it.each([
    ['typ JWT', { typ: 'JWT' }],
    ['typ missing', { typ: undefined }],
    ['typ of a grant token', { typ: 'jit+jwt' }],
  ])('%s → dpop_proof_typ', async (name, header) => {
    const tok = await boundToken(`typ-${name}`);
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok }, header)))).toBe('deny:dpop_proof_typ');
  });

  it.each(['none', 'None', 'HS256'])('unsigned or symmetric: alg %s → dpop_proof_alg', async (alg) => {
    const tok = await boundToken(`alg-${alg}`);
    const header = { typ: 'dpop+jwt', alg, jwk: publicJwkOf(client.publicJwk) };
    const payload = { jti: `alg-${alg}`, htm: 'GET', htu: `${ORIGIN}/orders/42`, iat: NOW, ath: accessTokenHash(tok) };
    const head = `${b64u(header)}.${b64u(payload)}`;
    // HS256 keyed with the public JWK, the classic confusion attack; `none` with an empty signature.
    const p = alg === 'HS256' ? `${head}.${createHmac('sha256', JSON.stringify(header.jwk)).update(head).digest('base64url')}` : `${head}.`;
    const refused = await decideOn(t, dpopReq('GET', '/orders/42', tok, p));
    // An empty signature never gets as far as the alg check: it is not a compact JWS with three parts.
    expect(refused).toBe(alg === 'HS256' ? 'deny:dpop_proof_alg' : 'deny:dpop_proof_malformed');
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, forge(header, payload)))).toBe('deny:dpop_proof_alg');
  });

  it('an asymmetric alg outside dpop.algorithms (RS256 by default) → dpop_proof_alg', async () => {
    const rsa = await makeKey('RS256', 'rsa-client');
    const tok = await boundToken('rs256', await calculateJwkThumbprint(rsa.publicJwk, 'sha256'));
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(rsa, { token: tok })))).toBe('deny:dpop_proof_alg');
    const allowRsa = await gate((c) => (c.dpop = { algorithms: ['ES256', 'RS256'] }));
    expect(await decideOn(allowRsa, dpopReq('GET', '/orders/42', tok, await proof(rsa, { token: tok })))).toBe('allow:granted');
  });

  it('an RSA key under 2048 bits → dpop_proof_jwk, not a bad signature', async () => {
    const allowPs = await gate((c) => (c.dpop = { algorithms: ['ES256', 'PS256'] }));
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    const tok = await boundToken('rsa-1024', await calculateJwkThumbprint(small as never, 'sha256'));
    const p = forge({ typ: 'dpop+jwt', alg: 'PS256', jwk: small }, { jti: 'small', htm: 'GET', htu: `${ORIGIN}/orders/42`, iat: NOW, ath: accessTokenHash(tok) });
    expect(await decideOn(allowPs, dpopReq('GET', '/orders/42', tok, p))).toBe('deny:dpop_proof_jwk');
    const big = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
    expect(proofPublicJwk(big, 'PS256')).toEqual({ kty: 'RSA', n: big.n, e: big.e });
  });

  it('private key material in the header jwk → dpop_proof_jwk (even though its thumbprint matches)', async () => {
    const tok = await boundToken('private-jwk');
    const privateJwk = await exportJWK(client.privateKey);
    expect(privateJwk.d).toBeTypeOf('string');
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok }, { jwk: privateJwk })))).toBe('deny:dpop_proof_jwk');
  });

  it('jwk missing, symmetric, or not fitting the alg → dpop_proof_jwk', async () => {
    const tok = await boundToken('jwk-shape');
    const pub = publicJwkOf(client.publicJwk);
    const p384 = publicJwkOf((await makeKey('ES384', 'p384')).publicJwk);
    for (const jwk of [undefined, 'a-string', { kty: 'oct', k: 'c2VjcmV0' }, { ...pub, kty: 'OKP' }, p384, { ...pub, alg: 'ES384' }, { ...pub, use: 'enc' }, { ...pub, key_ops: ['sign'] }, { ...pub, x: 5 }]) {
      expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok }, { jwk })))).toBe('deny:dpop_proof_jwk');
    }
  });

  it('the header jwk is imported from its public members only', () => {
    const pub = publicJwkOf(client.publicJwk) as Record<string, unknown>;
    expect(proofPublicJwk({ ...pub, kid: 'k', alg: 'ES256', use: 'sig', x5u: 'https://evil/x', ext: true }, 'ES256')).toEqual(pub);
    expect(proofPublicJwk([pub], 'ES256')).toBeUndefined();
    expect(proofPublicJwk({ ...pub, oth: [] }, 'ES256')).toBeUndefined();
  });

  it.each([
    ['not a JWS', 'not-a-proof'],
    ['two proofs joined by a comma', 'a.b.c, d.e.f'],
    ['header not JSON', `${b64u('x')}.${b64u({})}.AAAA`],
    ['over the size limit', `${'a'.repeat(9000)}.b.c`],
    ['empty', ''],
  ])('malformed proof (%s) → dpop_proof_malformed', async (name, p) => {
    const tok = await boundToken(`malformed-${name}`);
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, p))).toBe('deny:dpop_proof_malformed');
  });

  it.each([
    // Read last-wins by JSON.parse and first-wins by other readers: refused, as in grant tokens (black-box probe).
    ['a repeated htm in the payload', (h: string, p: string) => [h, p.replace('"htm":"GET"', '"htm":"GET","htm":"POST"')]],
    ['a repeated jti in the payload', (h: string, p: string) => [h, p.replace('"htm":', '"jti":"other","htm":')]],
    ['a repeated typ in the header', (h: string, p: string) => [h.replace('{', '{"typ":"JWT",'), p]],
  ])('a signed proof with %s → dpop_proof_malformed', async (name, edit) => {
    const tok = await boundToken(`dup-${name}`);
    const header = JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: publicJwkOf(client.publicJwk) });
    const payload = JSON.stringify({ jti: `dup-proof-${name}`, htm: 'GET', htu: `${ORIGIN}/orders/42`, iat: NOW, ath: accessTokenHash(tok) });
    const [h, p] = edit(header, payload) as [string, string];
    expect([h, p]).not.toEqual([header, payload]);
    const input = `${Buffer.from(h).toString('base64url')}.${Buffer.from(p).toString('base64url')}`;
    // WebCrypto's ECDSA signature is r || s, the JWS form: the proof is validly signed over the edited text.
    const sig = Buffer.from(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, client.privateKey as Parameters<typeof crypto.subtle.sign>[1], new TextEncoder().encode(input))).toString('base64url');
    expect(await decideOn(t, dpopReq(name.includes('htm') ? 'POST' : 'GET', '/orders/42', tok, `${input}.${sig}`))).toBe('deny:dpop_proof_malformed');
  });

  it('a good header over a payload that is not JSON → dpop_proof_malformed', async () => {
    const tok = await boundToken('payload-not-json');
    const p = `${b64u({ typ: 'dpop+jwt', alg: 'ES256', jwk: publicJwkOf(client.publicJwk) })}.${b64u('x')}.AAAA`;
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, p))).toBe('deny:dpop_proof_malformed');
  });

  it('any crit header, even b64 which jose itself understands → dpop_proof_malformed', async () => {
    const tok = await boundToken('crit');
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok }, { crit: ['b64'], b64: true })))).toBe('deny:dpop_proof_malformed');
  });
});

describe('401/400: scheme and headers', () => {
  it('no DPoP header with a bound token → dpop_proof_missing', async () => {
    const tok = await boundToken('missing');
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, undefined))).toBe('deny:dpop_proof_missing');
  });

  it('several DPoP headers → 400 multiple_dpop before any token work', async () => {
    const tok = await boundToken('several');
    const p = await proof(client, { token: tok });
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, p, { dpopCount: 2 }))).toBe('deny:multiple_dpop');
    expect(render('multiple_dpop').status).toBe(400);
  });

  it('a bound token sent as Bearer is refused, even with a valid proof beside it', async () => {
    const tok = await boundToken('as-bearer');
    const p = await proof(client, { token: tok });
    expect(await decideOn(t, input('GET', '/orders/42', `Bearer ${tok}`, { dpop: p, dpopCount: 1, host: HOST }))).toBe('deny:dpop_bearer_scheme');
  });

  it('the DPoP scheme with an unbound token is refused', async () => {
    const tok = await sign(keys.a, { jti: 'unbound' });
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok })))).toBe('deny:dpop_unbound_token');
  });

  it('an unbound Bearer token is unaffected by a stray DPoP header', async () => {
    const tok = await sign(keys.a, { jti: 'stray' });
    expect(await decideOn(t, input('GET', '/orders/42', `Bearer ${tok}`, { dpop: 'junk', dpopCount: 1 }))).toBe('allow:granted');
  });

  it('an empty DPoP credential → malformed_token; another scheme → missing_token', async () => {
    expect(await decideOn(t, input('GET', '/orders/42', 'DPoP '))).toBe('deny:malformed_token');
    expect(await decideOn(t, input('GET', '/orders/42', 'DPoPx abc'))).toBe('deny:missing_token');
  });

  it('a hand-built policy without dpop refuses bound tokens (dpop_unsupported), never allows them', async () => {
    const decider = new Decider({ policy: { ...t.gate.policy, dpop: undefined }, clock: t.clock, cache: new VerifiedTokenCache(0), revocation: t.gate.revocation });
    const tok = await boundToken('no-policy');
    expect(reasonOf(await decider.decide(dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok }))))).toBe('deny:dpop_unsupported');
    expect(decider.dpop).toBeUndefined();
  });

  it('the refusal keeps the token for the audit line', async () => {
    const tok = await boundToken('audit');
    const d = await t.gate.decide(dpopReq('GET', '/orders/42', tok, undefined));
    expect(d.kind === 'deny' && d.token?.jti).toBe('audit');
  });

  it('proof checks come before revocation and grants: no 403/revoked oracle without the key', async () => {
    const tok = await boundToken('oracle');
    expect(await decideOn(t, dpopReq('GET', '/orders/43', tok, await proof(other, { token: tok, htu: `${ORIGIN}/orders/43` })))).toBe('deny:dpop_key_mismatch');
  });
});

describe('htu origin', () => {
  const fwd = { forwardedProto: 'https', forwardedHost: 'api.example.com' };
  const fwdHtu = 'https://api.example.com/orders/42';

  // RFC 3986 does not rewrite these hosts; the WHATWG parser does (a probe saw each match).
  it.each([
    ['127.0.0.1', 'http://127.1/orders/42', 'http://127.0.0.1/orders/42'],
  ])('Host %s: an htu naming it in another spelling (%s) does not match; the canonical one does', async (host, other, canonical) => {
    const tok = await boundToken(`spelling-${other.length}`);
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, htu: other }), { host }))).toBe('deny:dpop_htu_mismatch');
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, htu: canonical }), { host }))).toBe('allow:granted');
  });

  // A re-probe: an IPv6 literal is one address in every spelling, and an empty port is the default (RFC 3986 6.2.3).
  it.each([
    ['[0:0:0:0:0:0:0:1]:8080', 'http://[0:0:0:0:0:0:0:1]:8080/orders/42'],
    ['[::1]:8080', 'http://[0:0:0:0:0:0:0:1]:8080/orders/42'],
    ['[::ffff:127.0.0.1]', 'http://[::ffff:127.0.0.1]/orders/42'],
    ['orders.internal', 'http://orders.internal:/orders/42'],
  ])('Host %s: htu %s matches', async (host, htu) => {
    const tok = await boundToken(`same-${host.length}-${htu.length}`);
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, htu }), { host }))).toBe('allow:granted');
  });

  it('no Host (and no external_origin) → no htu can match', async () => {
    const tok = await boundToken('no-host');
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok }), { host: undefined }))).toBe('deny:dpop_htu_mismatch');
  });

  it('a Host with a path or userinfo in it → no origin', async () => {
    const tok = await boundToken('odd-host');
    for (const host of [`${HOST}/x`, `u@${HOST}`, `${HOST}?`, `${HOST} `]) {
      expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok }), { host }))).toBe('deny:dpop_htu_mismatch');
    }
  });

  it('the transport scheme counts (https listener)', async () => {
    const tok = await boundToken('https');
    const p = await proof(client, { token: tok, htu: `https://${HOST}/orders/42` });
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, p, { scheme: 'https' }))).toBe('allow:granted');
  });

  it('X-Forwarded-* is ignored from a peer that is not a trusted proxy', async () => {
    const tok = await boundToken('fwd-untrusted');
    const p = await proof(client, { token: tok, htu: fwdHtu });
    expect(await decideOn(t, dpopReq('GET', '/orders/42', tok, p, { ...fwd, peer: '10.1.2.3' }))).toBe('deny:dpop_htu_mismatch');
  });

  it('X-Forwarded-Proto/-Host from a trusted proxy set the origin (last list value wins)', async () => {
    const g = await gate((c) => (c.dpop = { trusted_proxies: ['10.0.0.0/8'] }));
    const tok = await boundToken('fwd-trusted');
    expect(await decideOn(g, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, htu: fwdHtu }), { ...fwd, peer: '::ffff:10.1.2.3' }))).toBe('allow:granted');
    const spoofed = { forwardedProto: 'http, https', forwardedHost: `evil.example, api.example.com` };
    expect(await decideOn(g, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, htu: fwdHtu }), { ...spoofed, peer: '10.9.9.9' }))).toBe('allow:granted');
    expect(await decideOn(g, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, htu: fwdHtu }), { ...fwd, peer: '192.0.2.1' }))).toBe('deny:dpop_htu_mismatch');
  });

  it('dpop.external_origin wins over Host and X-Forwarded-*', async () => {
    const g = await gate((c) => (c.dpop = { external_origin: 'HTTPS://Orders.Example:443', trusted_proxies: ['10.0.0.0/8'] }));
    const tok = await boundToken('external');
    const p = await proof(client, { token: tok, htu: 'https://orders.example/orders/42' });
    expect(await decideOn(g, dpopReq('GET', '/orders/42', tok, p, { host: 'anything', ...fwd, peer: '10.0.0.1' }))).toBe('allow:granted');
    expect(await decideOn(g, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok }), { host: HOST }))).toBe('deny:dpop_htu_mismatch');
  });

  it('inputFromRawHeaders captures Host and X-Forwarded-*; two Host headers leave the origin unknown', () => {
    const one = inputFromRawHeaders(['Host', HOST, 'X-Forwarded-Proto', 'https', 'x-forwarded-host', 'a.example', 'DPoP', 'p', 'X-Method-Override', 'PUT'], 'GET', '/x', '10.0.0.1', 'http');
    expect(one).toMatchObject({ host: HOST, forwardedProto: 'https', forwardedHost: 'a.example', dpop: 'p', dpopCount: 1, methodOverride: true, peer: '10.0.0.1', scheme: 'http' });
    expect(inputFromRawHeaders(['Host', HOST, 'host', 'evil.example'], 'GET', '/x').host).toBeUndefined();
  });
});

describe('replay cache bound', () => {
  it('refuses new proofs when full of unexpired entries, never evicting one; accepts again once the oldest expire', () => {
    const c = new DpopReplayCache(2);
    const now = NOW * 1000;
    expect(c.add('a', now + 60_000, now)).toBe('fresh');
    expect(c.add('b', now + 90_000, now)).toBe('fresh');
    expect(c.add('c', now + 60_000, now)).toBe('full');
    expect(c.add('a', now + 60_000, now)).toBe('replay'); // still remembered: nothing was evicted
    expect(c.add('a', now + 60_000, now + 60_000)).toBe('replay'); // through the last instant its iat is in the window
    expect(c.add('c', now + 120_000, now + 60_001)).toBe('fresh'); // a expired and made room
    expect(c.add('d', now + 120_000, now + 60_001)).toBe('full'); // b is still live
    expect(c.add('a', now + 120_000, now + 60_001)).toBe('full'); // a is gone, and there is still no room
    expect(c.has('b', now + 60_001)).toBe(true);
    expect(c.has('b', now + 90_001)).toBe(false);
    expect(c.has('zzz', now)).toBe(false);
    expect(c.size).toBe(2);
    expect(c.stats).toEqual({ fresh: 3, replays: 2, refusedFull: 3 });
  });

  it('through the gate: replay_cache_entries 2 → the third live proof is refused (fail closed), later ones pass', async () => {
    const g = await gate((c) => (c.dpop = { replay_cache_entries: 2 }));
    const tok = await boundToken('bound-cache', jkt, { exp: NOW + 600 });
    for (const n of [1, 2]) expect(await decideOn(g, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, jti: `full-${n}` })))).toBe('allow:granted');
    expect(await decideOn(g, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, jti: 'full-3' })))).toBe('deny:dpop_replay_cache_full');
    // The refused proof was not recorded; once the first two are past their window it passes.
    g.clock.advance(61_000);
    expect(await decideOn(g, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, jti: 'full-3', iat: NOW + 61 })))).toBe('allow:granted');
  });
});

describe('server nonce (use_nonce)', () => {
  it('no nonce → 401 use_dpop_nonce with a DPoP-Nonce header; the retry with it passes', async () => {
    const g = await gate((c) => (c.dpop = { use_nonce: true, nonce_rotation: '1m' }));
    const tok = await boundToken('nonce');
    const first = await g.gate.decide(dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok })));
    expect(reasonOf(first)).toBe('deny:dpop_nonce_required');
    if (first.kind !== 'deny' || first.dpopNonce === undefined) throw new Error('expected a nonce');
    const r = renderDecision(first, g.gate.policy);
    expect(r.status).toBe(401);
    expect(r.headers['dpop-nonce']).toBe(first.dpopNonce);
    expect(r.headers['www-authenticate']).toContain('DPoP realm="jitgate", error="use_dpop_nonce"');
    expect(render('dpop_nonce_required').headers['dpop-nonce']).toBeUndefined(); // the shared table is untouched

    expect(await decideOn(g, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, nonce: first.dpopNonce })))).toBe('allow:granted');
    expect(await decideOn(g, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, nonce: 'made-up' })))).toBe('deny:dpop_nonce_required');

    // Valid through the next rotation interval, stale after that.
    g.clock.advance(60_000);
    expect(await decideOn(g, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, nonce: first.dpopNonce, iat: NOW + 60 })))).toBe('allow:granted');
    g.clock.advance(60_000);
    expect(await decideOn(g, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok, nonce: first.dpopNonce, iat: NOW + 120 })))).toBe('deny:dpop_nonce_required');
  });

  it('DpopNonces: current and previous bucket only; another key never matches', () => {
    const n = new DpopNonces(1000, Buffer.alloc(32, 1));
    const a = n.current(5_500);
    expect(n.accepts(a, 5_999)).toBe(true);
    expect(n.accepts(a, 6_000)).toBe(true);
    expect(n.accepts(a, 7_000)).toBe(false);
    expect(n.accepts(undefined, 5_500)).toBe(false);
    expect(new DpopNonces(1000, Buffer.alloc(32, 2)).accepts(a, 5_500)).toBe(false);
  });

  it('use_nonce with several workers is accepted (the primary hands every worker one key; test/cli/serve.test.ts runs it)', async () => {
    await expect(gate((c) => ((c.dpop = { use_nonce: true }), (c.workers = 2)))).resolves.toBeDefined();
  });

  it('two gates given the same nonce key accept each other\'s nonces; another key does not', async () => {
    const key = Buffer.alloc(32, 7);
    const a = new DpopNonces(60_000, key);
    expect(new DpopNonces(60_000, Buffer.from(key)).accepts(a.current(NOW * 1000), NOW * 1000)).toBe(true);
    expect(new DpopNonces(60_000).accepts(a.current(NOW * 1000), NOW * 1000)).toBe(false);
  });
});

describe('require_dpop', () => {
  it('per issuer: unbound tokens of that issuer are refused, other issuers unaffected', async () => {
    const g = await gate((c) => (c.issuers[0].require_dpop = true));
    expect(await decideOn(g, input('GET', '/orders/42', `Bearer ${await sign(keys.a, { jti: 'req-a' })}`))).toBe('deny:dpop_required');
    expect(await decideOn(g, input('GET', '/orders/42', `Bearer ${await sign(keys.b, { iss: ISSUER_B, jti: 'req-b' })}`))).toBe('allow:granted');
    const tok = await boundToken('req-bound');
    expect(await decideOn(g, dpopReq('GET', '/orders/42', tok, await proof(client, { token: tok })))).toBe('allow:granted');
  });

  it('dpop.require for all, with an issuer opting out', async () => {
    const g = await gate((c) => ((c.dpop = { require: true }), (c.issuers[1].require_dpop = false)));
    expect(await decideOn(g, input('GET', '/orders/42', `Bearer ${await sign(keys.a, { jti: 'all-a' })}`))).toBe('deny:dpop_required');
    expect(await decideOn(g, input('GET', '/orders/42', `Bearer ${await sign(keys.b, { iss: ISSUER_B, jti: 'all-b' })}`))).toBe('allow:granted');
  });

  it('with one issuer requiring DPoP, a cached Bearer token of another issuer and the proof-less refusals stay synchronous', async () => {
    const g = await gate((c) => (c.issuers[0].require_dpop = true));
    const other = input('GET', '/orders/42', `Bearer ${await sign(keys.b, { iss: ISSUER_B, jti: 'sync-b' })}`);
    await g.gate.decide(other); // verifies and caches
    const hit = g.gate.decide(other);
    expect(hit).not.toBeInstanceOf(Promise);
    expect((hit as Decision).reason).toBe('granted');
    const required = input('GET', '/orders/42', `Bearer ${await sign(keys.a, { jti: 'sync-a' })}`);
    await g.gate.decide(required);
    const refused = g.gate.decide(required);
    expect(refused).not.toBeInstanceOf(Promise);
    expect((refused as Decision).reason).toBe('dpop_required');
  });

  it('public routes still need no token', async () => {
    const g = await gate((c) => (c.dpop = { require: true }));
    expect(await decideOn(g, input('GET', '/healthz'))).toBe('allow:public');
  });
});

describe('answers (SPEC §3, RFC 9449 §7.1)', () => {
  it('every dpop_* refusal is a 401 with the Bearer challenge first and a DPoP challenge naming algs', () => {
    const dpopReasons = REASON_CODES.filter((r) => r.startsWith('dpop_') && r !== 'dpop_unsupported');
    expect(dpopReasons.length).toBeGreaterThanOrEqual(18);
    for (const reason of dpopReasons) {
      const info = REASONS[reason];
      expect(info.status, reason).toBe(401);
      expect(info.dpop, reason).toBeDefined();
      expect(render(reason).wwwAuthenticate).toBe(
        `Bearer realm="jitgate", error="invalid_token", error_description="${reason}", DPoP realm="jitgate", error="${info.dpop}", error_description="${reason}", algs="ES256 EdDSA"`,
      );
      expect(JSON.parse(render(reason).body)).toEqual({ error: 'invalid_token', reason });
    }
    expect(REASONS.dpop_replay.dpop).toBe('invalid_dpop_proof');
    expect(REASONS.dpop_bearer_scheme.dpop).toBe('invalid_token');
  });

  it('renderDecision names the configured algs; non-DPoP refusals are the shared answers', async () => {
    const g = await gate((c) => (c.dpop = { algorithms: ['ES384', 'PS256'] }));
    const d = await g.gate.decide(dpopReq('GET', '/orders/42', await boundToken('algs'), undefined));
    expect(renderDecision(d as never, g.gate.policy).wwwAuthenticate).toMatch(/, DPoP realm="jitgate", error="invalid_dpop_proof", error_description="dpop_proof_missing", algs="ES384 PS256"$/);
    expect(renderDecision({ kind: 'deny', reason: 'expired', path: null, token: null }, g.gate.policy)).toBe(render('expired'));
  });
});

describe('config', () => {
  it.each<[string, Record<string, unknown>, RegExp]>([
    ['external_origin with a path', { external_origin: 'https://orders.example/api' }, /dpop\.external_origin: expected scheme:\/\/host\[:port\] only/],
    ['a bad trusted proxy', { trusted_proxies: ['10.0.0.0/33'] }, /dpop\.trusted_proxies\[0\]: .* invalid prefix length/],
    ['HS256 as a proof alg', { algorithms: ['HS256'] }, /dpop\.algorithms\[0\]: alg "HS256" is not allowed/],
    ['a zero iat window', { iat_window: '0s' }, /dpop\.iat_window/],
    ['an unknown key', { iat_windw: '60s' }, /dpop/],
  ])('%s is refused naming the key', async (_name, dpop, message) => {
    const err = await gate((c) => (c.dpop = dpop)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toMatch(message);
  });

  it('defaults: ES256 and EdDSA, 60s window, 100000 entries, nothing required', async () => {
    expect(t.gate.config.dpop).toEqual({ algorithms: ['ES256', 'EdDSA'], iat_window: 60_000, replay_cache_entries: 100_000, require: false, use_nonce: false, nonce_rotation: 60_000, trusted_proxies: [], replay: 'local' });
    expect(t.gate.policy.dpop?.algs).toBe('ES256 EdDSA');
  });
});
