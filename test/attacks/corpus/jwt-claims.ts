/**
 * JWT attacks on the claims and on how the token is carried: claim types and ranges, missing
 * claims one by one, audience and issuer confusion, typ (an ID token is not a grant), grant
 * shapes that try to widen, token size, several Authorization headers, scheme spelling, and
 * tokens in places that must not count (query, cookie, other headers).
 */
import type { Header } from '../harness.ts';
import { ISSUER_C } from '../harness.ts';
import type { Row, RowContext } from '../check.ts';
import { claims, header, nowSec, signed, signText } from '../jws.ts';
import { ISSUER_A, ISSUER_B } from '../../fixtures/tokens.ts';
import { bearer } from './jwt-structure.ts';

const withClaims = (over: Record<string, unknown>, key: 'a' | 'b' | 'aEd' = 'a') => (c: RowContext) => bearer(signed(c.keys[key], claims(over)));
const withText = (text: (now: number) => string) => (c: RowContext) => bearer(signText(c.keys.a, JSON.stringify(header(c.keys.a)), text(nowSec())));
const grant = (entry: Record<string, unknown>) => ({ authorization_details: [{ type: 'jit_grant', actions: ['GET'], paths: ['/orders/42'], ...entry }] });
const at = (d: number) => nowSec() + d;

export const JWT_CLAIMS: readonly Row[] = [
  // Time claims: types and ranges.
  { name: 'exp as a numeric string', headers: (c) => withClaims({ exp: String(at(300)) })(c), expect: 'invalid_claims' },
  { name: 'iat as a numeric string', headers: (c) => withClaims({ iat: String(at(0)) })(c), expect: 'invalid_claims' },
  { name: 'nbf as a numeric string', headers: (c) => withClaims({ nbf: String(at(0)) })(c), expect: 'invalid_claims' },
  ...[null, true, [1], {}].map((v): Row => ({ name: `exp ${JSON.stringify(v)}`, headers: withClaims({ exp: v }), expect: 'invalid_claims' })),
  { name: 'control: exp and iat as floats', headers: (c) => withClaims({ iat: at(0) + 0.25, exp: at(300) + 0.5 })(c), expect: 'granted' },
  { name: 'exp a float just past', headers: (c) => withClaims({ iat: at(-100.5), exp: at(-10) - 0.5 })(c), expect: 'expired' },
  { name: 'exp huge (1e308)', headers: withClaims({ exp: 1e308 }), expect: 'lifetime_exceeded' },
  { name: 'exp beyond 2^53', headers: withClaims({ exp: 2 ** 53 + 2 }), expect: 'lifetime_exceeded' },
  { name: 'exp 1e400 (Infinity to JSON.parse)', headers: withText((n) => JSON.stringify(claims({ iat: n })).replace(/"exp":\d+/, '"exp":1e400')), expect: 'invalid_claims' },
  { name: 'exp -1e400 (-Infinity)', headers: withText((n) => JSON.stringify(claims({ iat: n })).replace(/"exp":\d+/, '"exp":-1e400')), expect: 'invalid_claims' },
  { name: 'exp negative', headers: withClaims({ exp: -1 }), expect: 'expired' },
  { name: 'exp -0', headers: withText(() => JSON.stringify(claims()).replace(/"exp":\d+/, '"exp":-0')), expect: 'expired' },
  { name: 'iat negative (lifetime from 1969)', headers: withClaims({ iat: -1 }), expect: 'lifetime_exceeded' },
  { name: 'iat huge, exp now', headers: (c) => withClaims({ iat: 1e308, exp: at(300) })(c), expect: 'issued_in_future' },
  { name: 'iat in the future beyond tolerance', headers: (c) => withClaims({ iat: at(60), exp: at(300) })(c), expect: 'issued_in_future' },
  { name: 'nbf in the future beyond tolerance', headers: (c) => withClaims({ nbf: at(60) })(c), expect: 'not_yet_valid' },
  { name: 'nbf huge', headers: withClaims({ nbf: 1e308 }), expect: 'not_yet_valid' },
  { name: 'expired beyond tolerance', headers: (c) => withClaims({ iat: at(-400), exp: at(-100) })(c), expect: 'expired' },
  { name: 'lifetime one second over max_ttl', headers: (c) => withClaims({ iat: at(0), exp: at(901) })(c), expect: 'lifetime_exceeded' },
  { name: 'exp before iat, both past', headers: (c) => withClaims({ iat: at(-10), exp: at(-100) })(c), expect: 'expired' },

  // Required claims, one missing at a time; then empty or unsafe values.
  ...['iss', 'sub', 'jti', 'iat', 'exp'].map((claim): Row => ({ name: `missing ${claim}`, headers: withClaims({ [claim]: undefined }), expect: 'invalid_claims' })),
  { name: 'missing aud', headers: withClaims({ aud: undefined }), expect: 'wrong_audience' },
  { name: 'missing authorization_details', headers: withClaims({ authorization_details: undefined }), expect: 'invalid_grant' },
  ...[
    ['sub', ''],
    ['jti', ''],
    ['sub', ' spiffe://prod/x'],
    ['sub', 'spiffe://prod/x\r\nx-jit-subject: admin'],
    ['jti', 'j\r\nx'],
    ['txn', 't\nx'],
    ['sub', 'spiffe://prod/caf\u00e9'],
    ['sub', 'x'.repeat(1025)],
    ['sub', 42],
    ['jti', ['a']],
    ['txn', ''],
    ['act', { sub: 'a\r\nb' }],
    ['act', 'spiffe://prod/actor'],
  ].map(([claim, v]): Row => ({ name: `${claim as string} ${JSON.stringify(v).slice(0, 40)}`, headers: withClaims({ [claim as string]: v }), expect: 'invalid_claims' })),

  // Audience confusion.
  ...['Orders', 'orders ', '', 'orders,billing', 'https://orders.internal', 'billing'].map((aud): Row => ({ name: `aud ${JSON.stringify(aud)}`, headers: withClaims({ aud }), expect: 'wrong_audience' })),
  ...[[], ['billing'], ['orders\u0000'], ['ORDERS']].map((aud): Row => ({ name: `aud ${JSON.stringify(aud)}`, headers: withClaims({ aud }), expect: 'wrong_audience' })),
  ...[[42], {}, null, ['orders', 1]].map((aud): Row => ({ name: `aud ${JSON.stringify(aud)}`, headers: withClaims({ aud }), expect: 'invalid_claims' })),
  { name: 'control: aud list containing the audience', headers: withClaims({ aud: ['billing', 'orders'] }), expect: 'granted' },

  // Issuer confusion: only that issuer's keys may verify its tokens.
  { name: "iss B signed with A's key (A's kid)", headers: withClaims({ iss: ISSUER_B }), expect: 'unknown_key' },
  { name: "iss A signed with B's real key (B's kid)", headers: withClaims({ iss: ISSUER_A }, 'b'), expect: 'unknown_key' },
  { name: "iss A signed with B's real key under A's kid", headers: (c) => bearer(signed(c.keys.b, claims(), header(c.keys.b, { kid: 'a-es256' }))), expect: 'bad_signature' },
  { name: "iss C signed with A's RSA-less key", headers: (c) => bearer(signed(c.keys.a, claims({ iss: ISSUER_C }))), expect: 'alg_not_allowed' },
  { name: 'control: iss B signed by B', headers: withClaims({ iss: ISSUER_B }, 'b'), expect: 'granted' },
  ...[`${ISSUER_A}/`, ISSUER_A.toUpperCase(), `${ISSUER_A} `, 'https://evil.example', ''].map((iss): Row => ({ name: `iss ${JSON.stringify(iss)}`, headers: withClaims({ iss }), expect: 'unknown_issuer' })),
  ...[[ISSUER_A], null, 1].map((iss): Row => ({ name: `iss ${JSON.stringify(iss)}`, headers: withClaims({ iss }), expect: 'invalid_claims' })),

  // typ is enforced for issuer A (RFC 8725 §3.11): an OIDC ID token or a DPoP proof is not a grant.
  {
    name: 'ID-token-shaped (typ JWT, OIDC claims)',
    headers: (c) => bearer(signed(c.keys.a, claims({ nonce: 'n', azp: 'client', auth_time: nowSec(), email: 'a@b.c', authorization_details: undefined }), header(c.keys.a, { typ: 'JWT' }))),
    expect: 'wrong_typ',
  },
  ...[undefined, 'JWT', 'at+jwt', 'application/at+jwt', 'dpop+jwt', 'jit+jwt ', 'jit', ['jit+jwt'], 'application/application/jit+jwt'].map(
    (typ): Row => ({ name: `typ ${JSON.stringify(typ) ?? 'missing'}`, headers: (c) => bearer(signed(c.keys.a, claims(), header(c.keys.a, { typ }))), expect: 'wrong_typ' }),
  ),
  ...['application/jit+jwt', 'JIT+JWT', 'Application/Jit+Jwt'].map((typ): Row => ({ name: `control: typ ${typ}`, headers: (c) => bearer(signed(c.keys.a, claims(), header(c.keys.a, { typ }))), expect: 'granted' })),

  // Grant shapes that try to widen (SPEC §1 patterns).
  ...['/orders/42/../**', '/orders/4*', '/orders/**/x', 'orders/42', '/orders//42', '/orders/%2e%2e/**', '/orders/42\\x', '/orders/%2F', '/**/**', '/orders/***', '/orders/42?x=1', ''].map(
    (p): Row => ({ name: `grant path pattern ${JSON.stringify(p)}`, headers: withClaims(grant({ paths: [p] })), expect: 'invalid_grant' }),
  ),
  { name: 'grant paths not a list', headers: withClaims(grant({ paths: '/orders/42' })), expect: 'invalid_grant' },
  { name: 'grant pattern case differs', headers: withClaims(grant({ paths: ['/ORDERS/42'] })), expect: 'path_not_granted' },
  { name: 'grant for another location', headers: withClaims(grant({ locations: ['https://billing.internal'] })), expect: 'no_grant' },
  { name: 'grant of another type', headers: withClaims({ authorization_details: [{ type: 'payment_initiation', actions: ['GET'], paths: ['/**'] }] }), expect: 'no_grant' },
  // An action name the config does not map grants nothing (grant.ts), so lower-case `get` is not GET.
  { name: 'grant action not upper case', headers: withClaims(grant({ actions: ['get'] })), expect: 'method_not_granted' },
  { name: 'grant actions not a list', headers: withClaims(grant({ actions: 'GET' })), expect: 'invalid_grant' },
  { name: 'grant for HEAD only (GET not implied)', headers: withClaims(grant({ actions: ['HEAD'] })), expect: 'method_not_granted' },
  { name: 'revoked jti', headers: withClaims({ jti: 'revoked-jti' }), expect: 'revoked' },

  // Size.
  { name: 'control: token just under max_token_bytes (8180)', headers: (c) => bearer(padTo(c, 8180)), expect: 'granted' },
  { name: 'token just over max_token_bytes (8193)', headers: (c) => bearer(padTo(c, 8193)), expect: 'token_too_large' },
  { name: 'token of 12 KB (fits the header limit)', headers: (c) => bearer(padTo(c, 12 * 1024)), expect: 'token_too_large' },
  { name: 'token of 64 KB', headers: (c) => bearer(padTo(c, 64 * 1024)), expect: 'headers_too_large', on: { ext_authz_grpc: 'token_too_large' } },

  // Several Authorization headers, and scheme spelling (RFC 6750 §2.1: case-insensitive).
  { name: 'two identical Authorization headers', headers: (c) => twice(bearer(signed(c.keys.a)), 2), expect: 'multiple_authorization' },
  { name: '50 Authorization headers', headers: (c) => [...bearer(signed(c.keys.a)), ...twice([['Authorization', 'Bearer x']], 49)], expect: 'multiple_authorization' },
  { name: '50 Authorization headers of 600 bytes (head over 16 KB)', headers: (c) => twice(bearer(signed(c.keys.a)), 50), expect: 'headers_too_large', on: { ext_authz_grpc: 'multiple_authorization' } },
  { name: 'Authorization and authorization', headers: (c) => [['Authorization', `Bearer ${signed(c.keys.a)}`], ['authorization', `Bearer ${signed(c.keys.a)}`]], expect: 'multiple_authorization' },
  { name: 'valid Authorization plus an empty one', headers: (c) => [...bearer(signed(c.keys.a)), ['Authorization', '']], expect: 'multiple_authorization' },
  { name: 'Bearer and Basic', headers: (c) => [['Authorization', 'Basic dXNlcjpwYXNz'], ...bearer(signed(c.keys.a))], expect: 'multiple_authorization' },
  ...['bearer', 'BEARER', 'BeArEr'].map((s): Row => ({ name: `control: scheme ${s}`, headers: (c) => [['Authorization', `${s} ${signed(c.keys.a)}`]], expect: 'granted' })),
  { name: 'control: scheme and token separated by a tab', headers: (c) => [['Authorization', `Bearer\t${signed(c.keys.a)}`]], expect: 'granted' },
  { name: 'scheme glued to the token', headers: (c) => [['Authorization', `Bearer${signed(c.keys.a)}`]], expect: 'missing_token' },
  { name: 'scheme Token', headers: (c) => [['Authorization', `Token ${signed(c.keys.a)}`]], expect: 'missing_token' },
  { name: 'scheme Basic carrying the token', headers: (c) => [['Authorization', `Basic ${Buffer.from(`${signed(c.keys.a)}:`).toString('base64')}`]], expect: 'missing_token' },
  { name: 'scheme only', headers: () => [['Authorization', 'Bearer']], expect: 'malformed_token' },
  { name: 'token in quotes', headers: (c) => [['Authorization', `Bearer "${signed(c.keys.a)}"`]], expect: 'malformed_token' },

  // Tokens anywhere else do not count.
  ...['access_token', 'token', 'jwt', 'id_token'].map((q): Row => ({ name: `token in the query (?${q}=)`, target: (c) => `/orders/42?${q}=${signed(c.keys.a)}`, expect: 'missing_token' })),
  { name: 'token in a cookie', headers: (c) => [['Cookie', `access_token=${signed(c.keys.a)}`]], expect: 'missing_token' },
  ...['X-Access-Token', 'X-Auth-Token', 'X-Forwarded-Access-Token', 'X-Auth-Request-Access-Token', 'Proxy-Authorization', 'X-Jit-Token', 'Authorization-Bearer'].map(
    // X-Jit-Token carries the identity prefix, which forward-auth refuses before looking for a token.
    (h): Row => ({ name: `token in ${h}`, headers: (c) => [[h, `Bearer ${signed(c.keys.a)}`]], expect: 'missing_token', ...(h === 'X-Jit-Token' ? { on: { forward_auth: 'identity_header' } } : {}) }),
  ),
  { name: 'token in a form body', method: 'POST', headers: () => [['Content-Type', 'application/x-www-form-urlencoded']], body: (c) => `access_token=${signed(c.keys.a)}`, expect: 'missing_token' },
];

function twice(h: Header[], n: number): Header[] {
  return Array.from({ length: n }, () => h[0]!);
}

/** A validly signed token of `len` to `len + 3` characters (a padding claim fills it; base64url cannot hit every length). */
function padTo(c: RowContext, len: number): string {
  const base = signed(c.keys.a, claims({ pad: '' })).length;
  let pad = Math.max(0, Math.floor(((len - base) * 3) / 4) - 2);
  for (;;) {
    const t = signText(c.keys.a, JSON.stringify(header(c.keys.a)), JSON.stringify(claims({ pad: 'p'.repeat(pad) })));
    if (t.length >= len) return t;
    pad++;
  }
}
