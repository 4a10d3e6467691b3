/**
 * JWT attacks on the JOSE layer: alg confusion, forged signatures, key-selection headers an
 * attacker controls (jwk, jku, x5u, x5c, kid), crit/b64, JWE and nested tokens, broken compact
 * form and duplicate JSON members. Every row is GET /orders/42, inside the default grant, so
 * anything but the expected refusal would reach the upstream.
 */
import type { Header } from '../harness.ts';
import type { Row, RowContext } from '../check.ts';
import { b64u, claims, forge, header, hmacToken, publicPem, signed, signText } from '../jws.ts';
import { ISSUER_C } from '../harness.ts';

export const bearer = (t: string): Header[] => [['Authorization', `Bearer ${t}`]];
const tok = (f: (c: RowContext) => string) => (c: RowContext) => bearer(f(c));

const P256_ORDER = Buffer.from('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex');
const es256Sig = (r: Buffer, s: Buffer): string => Buffer.concat([r, s]).toString('base64url');
const ZERO32 = Buffer.alloc(32);
const grantC = (): Record<string, unknown> => claims({ iss: ISSUER_C });


/** The default payload as JSON text with `extra` members written BEFORE the real ones (JSON.parse keeps the last). */
const dupPayload = (extra: string, c = claims()): string => `{${extra},${JSON.stringify(c).slice(1)}`;
const dupHeader = (extra: string, h: Record<string, unknown>): string => `{${extra},${JSON.stringify(h).slice(1)}`;

export const JWT_STRUCTURE: readonly (Row & { bug?: string })[] = [
  // Positive controls: the harness is not vacuous.
  { name: 'control: valid ES256 token', headers: tok(({ keys }) => signed(keys.a)), expect: 'granted' },
  { name: 'control: valid EdDSA token', headers: tok(({ keys }) => signed(keys.aEd)), expect: 'granted' },
  { name: 'control: valid RS256 token of issuer C', headers: tok(({ keys }) => signed(keys.rsa, grantC())), expect: 'granted' },
  { name: 'control: valid PS256 token of issuer C', headers: tok(({ keys }) => signed(keys.pss, grantC())), expect: 'granted' },

  // alg none, any spelling, with and without a signature segment.
  ...['none', 'None', 'NONE', 'nOnE'].flatMap((alg): Row[] => [
    { name: `alg ${alg}, empty signature`, headers: tok(({ keys }) => `${b64u(JSON.stringify(header(keys.a, { alg })))}.${b64u(JSON.stringify(claims()))}.`), expect: 'malformed_token' },
    { name: `alg ${alg}, junk signature`, headers: tok(({ keys }) => forge(header(keys.a, { alg }), claims())), expect: 'alg_not_allowed' },
  ]),
  { name: 'alg missing', headers: tok(({ keys }) => forge(header(keys.a, { alg: undefined }), claims())), expect: 'malformed_token' },
  { name: 'alg as an array', headers: tok(({ keys }) => forge(header(keys.a, { alg: ['ES256'] }), claims())), expect: 'malformed_token' },
  { name: 'alg empty string', headers: tok(({ keys }) => forge(header(keys.a, { alg: '' }), claims())), expect: 'alg_not_allowed' },
  { name: 'alg lower-case es256', headers: tok(({ keys }) => signText(keys.a, JSON.stringify(header(keys.a, { alg: 'es256' })), JSON.stringify(claims()), 'ES256')), expect: 'alg_not_allowed' },
  // HMAC with the issuer's PUBLIC key as the secret (RS256/ES256 → HS256 confusion).
  ...(['HS256', 'HS384', 'HS512'] as const).map((alg): Row => ({ name: `${alg} keyed with issuer A's public key PEM`, headers: tok(({ keys }) => hmacToken(alg, publicPem(keys.a), header(keys.a), claims())), expect: 'alg_not_allowed' })),
  { name: "HS256 keyed with issuer C's RSA public key PEM", headers: tok(({ keys }) => hmacToken('HS256', publicPem(keys.rsa), header(keys.rsa), grantC())), expect: 'alg_not_allowed' },
  { name: "HS256 keyed with issuer A's public JWK text", headers: tok(({ keys }) => hmacToken('HS256', JSON.stringify(keys.a.publicJwk), header(keys.a), claims())), expect: 'alg_not_allowed' },
  { name: 'RS256 for an issuer that allows only ES256/EdDSA', headers: tok(({ keys }) => signed(keys.rsa, claims(), header(keys.rsa, { kid: 'a-es256' }))), expect: 'alg_not_allowed' },
  { name: 'ES256 for the RSA-only issuer C', headers: tok(({ keys }) => signed(keys.a, grantC())), expect: 'alg_not_allowed' },
  { name: 'Ed25519 (not in the allowlist) with the EdDSA key', headers: tok(({ keys }) => signText(keys.aEd, JSON.stringify(header(keys.aEd, { alg: 'Ed25519' })), JSON.stringify(claims()), 'EdDSA')), expect: 'alg_not_allowed' },
  { name: 'EdDSA header on the ES256 kid', headers: tok(({ keys }) => signText(keys.aEd, JSON.stringify(header(keys.aEd, { kid: 'a-es256' })), JSON.stringify(claims()))), expect: 'unknown_key' },
  { name: 'PS256 header on the RS256 kid (same RSA key)', headers: tok(({ keys }) => signText(keys.rsa, JSON.stringify(header(keys.rsa, { alg: 'PS256' })), JSON.stringify(grantC()), 'PS256')), expect: 'unknown_key' },

  // Forged ECDSA signatures (CVE-2022-21449 "psychic signatures") and transplants.
  { name: 'ES256 r=s=0', headers: tok(({ keys }) => forge(header(keys.a), claims(), es256Sig(ZERO32, ZERO32))), expect: 'bad_signature' },
  { name: 'ES256 r=s=n (curve order)', headers: tok(({ keys }) => forge(header(keys.a), claims(), es256Sig(P256_ORDER, P256_ORDER))), expect: 'bad_signature' },
  { name: 'ES256 DER-encoded r=s=0', headers: tok(({ keys }) => forge(header(keys.a), claims(), Buffer.from('3006020100020100', 'hex').toString('base64url'))), expect: 'bad_signature' },
  { name: 'ES256 signature of the wrong length', headers: tok(({ keys }) => forge(header(keys.a), claims(), 'AA')), expect: 'bad_signature' },
  { name: 'valid signature with bytes appended', headers: tok(({ keys }) => `${signed(keys.a)}AAAA`), expect: 'bad_signature' },
  {
    name: 'payload swapped under a valid header and signature',
    headers: tok(({ keys }) => {
      const [h, , s] = signed(keys.a).split('.');
      return `${h}.${b64u(JSON.stringify(claims({ authorization_details: [{ type: 'jit_grant', actions: ['GET'], paths: ['/**'] }] })))}.${s}`;
    }),
    expect: 'bad_signature',
  },
  { name: 'same kid, other key material', headers: tok(({ keys }) => signed(keys.stranger)), expect: 'bad_signature' },

  // Key-selection headers are never used to find a key (SPEC §1).
  { name: 'embedded jwk with the attacker kid', headers: tok(({ keys }) => signed(keys.evil, claims(), header(keys.evil, { jwk: keys.evil.publicJwk }))), expect: 'unknown_key' },
  { name: 'embedded jwk, no kid', headers: tok(({ keys }) => signed(keys.evil, claims(), header(keys.evil, { kid: undefined, jwk: keys.evil.publicJwk }))), expect: 'bad_signature' },
  { name: "embedded jwk under A's kid", headers: tok(({ keys }) => signed(keys.evil, claims(), header(keys.evil, { kid: 'a-es256', jwk: keys.evil.publicJwk }))), expect: 'bad_signature' },
  { name: 'jku at the attacker server', headers: tok(({ keys, attackerUrl }) => signed(keys.evil, claims(), header(keys.evil, { jku: `${attackerUrl}/jwks.json` }))), expect: 'unknown_key' },
  { name: "jku at the attacker server under A's kid", headers: tok(({ keys, attackerUrl }) => signed(keys.evil, claims(), header(keys.evil, { kid: 'a-es256', jku: `${attackerUrl}/jwks.json` }))), expect: 'bad_signature' },
  { name: 'x5u at the attacker server', headers: tok(({ keys, attackerUrl }) => signed(keys.evil, claims(), header(keys.evil, { x5u: `${attackerUrl}/cert.pem` }))), expect: 'unknown_key' },
  { name: 'x5c chain in the header', headers: tok(({ keys }) => signed(keys.evil, claims(), header(keys.evil, { kid: 'a-es256', x5c: [b64u('not a certificate').replace(/-/g, '+')] }))), expect: 'bad_signature' },
  { name: 'kid naming a URL on the attacker server', headers: tok(({ keys, attackerUrl }) => signed(keys.evil, claims(), header(keys.evil, { kid: `${attackerUrl}/jwks.json` }))), expect: 'unknown_key' },
  ...['../../../../../../dev/null', '/etc/passwd', '..\\..\\keys\\a', 'a-es256/../b-es256', 'file:///etc/passwd', "' OR '1'='1", 'a-es256\u0000', 'a-es256 ', ' a-es256', 'A-ES256', '__proto__', 'constructor', 'toString', 'hasOwnProperty', '%61-es256', 'a-es256\r\nx: y', 'k'.repeat(4000)].map(
    (kid): Row => ({ name: `kid ${JSON.stringify(kid.length > 40 ? `${kid.slice(0, 8)}…(${kid.length})` : kid)}`, headers: tok(({ keys }) => signed(keys.evil, claims(), header(keys.evil, { kid }))), expect: 'unknown_key' }),
  ),
  ...[42, '', null, {}, ['a-es256'], true].map((kid): Row => ({ name: `kid ${JSON.stringify(kid)}`, headers: tok(({ keys }) => signed(keys.a, claims(), header(keys.a, { kid }))), expect: 'malformed_token' })),
  { name: "B's kid on a token claiming A", headers: tok(({ keys }) => signed(keys.b)), expect: 'unknown_key' },

  // crit and b64 (RFC 7515 §4.1.11, RFC 7797).
  { name: 'crit naming an unknown parameter', headers: tok(({ keys }) => signed(keys.a, claims(), header(keys.a, { crit: ['urn:x-evil'], 'urn:x-evil': 1 }))), expect: 'unsupported_crit' },
  { name: 'crit naming a registered claim', headers: tok(({ keys }) => signed(keys.a, claims(), header(keys.a, { crit: ['exp'] }))), expect: 'unsupported_crit' },
  { name: 'crit empty list', headers: tok(({ keys }) => signed(keys.a, claims(), header(keys.a, { crit: [] }))), expect: 'unsupported_crit' },
  { name: 'crit not a list', headers: tok(({ keys }) => signed(keys.a, claims(), header(keys.a, { crit: 'b64' }))), expect: 'unsupported_crit' },
  // Without crit RFC 7797 lets a verifier ignore b64 (jose does); SPEC §1 refuses a b64:false token outright.
  { name: 'b64:false without crit, correctly signed', headers: tok(({ keys }) => signed(keys.a, claims(), header(keys.a, { b64: false }))), expect: 'malformed_token' },
  { name: 'b64 as a string, without crit', headers: tok(({ keys }) => signed(keys.a, claims(), header(keys.a, { b64: 'false' }))), expect: 'malformed_token' },
  { name: 'b64:false with crit, encoded payload', headers: tok(({ keys }) => signed(keys.a, claims(), header(keys.a, { b64: false, crit: ['b64'] }))), expect: 'unsupported_crit' },
  {
    name: 'b64:false with crit, unencoded JSON payload',
    headers: tok(({ keys }) => {
      const h = b64u(JSON.stringify(header(keys.a, { b64: false, crit: ['b64'] })));
      return `${h}.${JSON.stringify(claims())}.${signed(keys.a).split('.')[2]}`;
    }),
    // Its JSON payload holds commas: read as several credentials on every transport (http-input.ts, check-request.ts).
    expect: 'multiple_authorization',
  },

  // Not a JWS at all.
  { name: 'JWE compact (5 segments)', headers: tok(() => [{ alg: 'RSA-OAEP', enc: 'A256GCM' }, 'key', 'iv', 'ciphertext', 'tag'].map((p) => b64u(JSON.stringify(p))).join('.')), expect: 'malformed_token' },
  { name: "JWE 'dir' with empty key segment", headers: tok(() => `${b64u(JSON.stringify({ alg: 'dir', enc: 'A256GCM' }))}..aXY.Y2lwaGVy.dGFn`), expect: 'malformed_token' },
  { name: 'nested: a signed JWS whose payload is a valid token', headers: tok(({ keys }) => signText(keys.a, JSON.stringify(header(keys.a, { cty: 'JWT' })), signed(keys.a))), expect: 'malformed_token' },
  { name: 'two tokens, space-separated', headers: tok(({ keys }) => `${signed(keys.a)} ${signed(keys.a)}`), expect: 'malformed_token' },
  // Envoy merges repeated headers with ",", so its services read a comma as several headers (check-request.ts);
  // the proxy and forward-auth read one line the same way (http-input.ts), so every transport agrees.
  { name: 'two tokens, comma-separated', headers: tok(({ keys }) => `${signed(keys.a)},${signed(keys.a)}`), expect: 'multiple_authorization' },
  { name: 'two tokens, dot-joined', headers: tok(({ keys }) => `${signed(keys.a)}.${signed(keys.a)}`), expect: 'malformed_token' },
  { name: 'two segments', headers: tok(({ keys }) => signed(keys.a).split('.').slice(0, 2).join('.')), expect: 'malformed_token' },
  { name: 'four segments', headers: tok(({ keys }) => `${signed(keys.a)}.AAAA`), expect: 'malformed_token' },
  { name: 'trailing dot', headers: tok(({ keys }) => `${signed(keys.a)}.`), expect: 'malformed_token' },
  { name: 'leading dot', headers: tok(({ keys }) => `.${signed(keys.a)}`), expect: 'malformed_token' },
  { name: 'empty payload segment', headers: tok(({ keys }) => { const [h, , s] = signed(keys.a).split('.'); return `${h}..${s}`; }), expect: 'malformed_token' },
  { name: 'only dots', headers: tok(() => '..'), expect: 'malformed_token' },
  { name: 'base64 padding', headers: tok(({ keys }) => { const [h, p, s] = signed(keys.a).split('.'); return `${h}==.${p}.${s}`; }), expect: 'malformed_token' },
  { name: 'standard base64 alphabet (+ /)', headers: tok(({ keys }) => signed(keys.a).replace(/-/g, '+').replace(/_/g, '/').replace(/\.[A-Za-z0-9]/, '.+')), expect: 'malformed_token' },
  { name: 'header not JSON', headers: tok(({ keys }) => `${b64u('not json')}.${signed(keys.a).split('.').slice(1).join('.')}`), expect: 'malformed_token' },
  { name: 'header JSON array', headers: tok(() => forge(['ES256'], claims())), expect: 'malformed_token' },
  { name: 'header JSON null', headers: tok(() => `${b64u('null')}.${b64u(JSON.stringify(claims()))}.AAAA`), expect: 'malformed_token' },
  // RFC 8259 §8.1 lets a parser ignore a BOM; jose's TextDecoder drops it. A stricter parser refuses: no widening.
  { name: 'control: header with a BOM', headers: tok(({ keys }) => signText(keys.a, `\uFEFF${JSON.stringify(header(keys.a))}`, JSON.stringify(claims()))), expect: 'granted' },
  ...['[]', '"a string"', '123', 'null', 'true', '{"iss":'].map((p): Row => ({ name: `payload ${p}`, headers: tok(({ keys }) => signText(keys.a, JSON.stringify(header(keys.a)), p)), expect: 'malformed_token' })),

  // Duplicate JSON members: one parser's first is another's last, so both must be refused.
  ...[
    ['header alg', (c: RowContext) => signText(c.keys.a, dupHeader('"alg":"none"', header(c.keys.a)), JSON.stringify(claims()))],
    ['header kid', (c: RowContext) => signText(c.keys.a, dupHeader('"kid":"evil"', header(c.keys.a)), JSON.stringify(claims()))],
    ['header typ', (c: RowContext) => signText(c.keys.a, dupHeader('"typ":"JWT"', header(c.keys.a)), JSON.stringify(claims()))],
    ['payload iss', (c: RowContext) => signText(c.keys.a, JSON.stringify(header(c.keys.a)), dupPayload('"iss":"https://evil.example"'))],
    ['payload aud', (c: RowContext) => signText(c.keys.a, JSON.stringify(header(c.keys.a)), dupPayload('"aud":"billing"'))],
    ['payload exp', (c: RowContext) => signText(c.keys.a, JSON.stringify(header(c.keys.a)), dupPayload('"exp":1'))],
    ['payload sub', (c: RowContext) => signText(c.keys.a, JSON.stringify(header(c.keys.a)), dupPayload('"sub":"spiffe://prod/admin"'))],
    ['payload iss, one spelled with \\u escapes', (c: RowContext) => signText(c.keys.a, JSON.stringify(header(c.keys.a)), dupPayload('"\\u0069ss":"https://evil.example"'))],
    ['payload authorization_details', (c: RowContext) => signText(c.keys.a, JSON.stringify(header(c.keys.a)), dupPayload('"authorization_details":[{"type":"jit_grant","actions":["GET","DELETE"],"paths":["/**"]}]'))],
    ['member inside a grant entry', (c: RowContext) => signText(c.keys.a, JSON.stringify(header(c.keys.a)), JSON.stringify(claims()).replace('"paths":[', '"paths":["/**"],"paths":['))],
  ].map(([what, make]): Row => ({ name: `duplicate ${what as string}`, headers: tok(make as (c: RowContext) => string), expect: 'malformed_token' })),
  { name: 'payload __proto__ member carrying the claims', headers: tok(({ keys }) => signText(keys.a, JSON.stringify(header(keys.a)), `{"__proto__":${JSON.stringify(claims())}}`)), expect: 'invalid_claims' },
  {
    name: 'payload __proto__ carrying a wide grant, own grant absent',
    headers: tok(({ keys }) => signText(keys.a, JSON.stringify(header(keys.a)), JSON.stringify({ ...claims({ authorization_details: undefined }), ['__proto__']: null }).replace('"__proto__":null', '"__proto__":{"authorization_details":[{"type":"jit_grant","actions":["GET"],"paths":["/**"]}]}'))),
    expect: 'invalid_grant',
  },
];
