/**
 * The token corpus of the differential test (jws-differential.test.ts): valid tokens of every alg
 * jitgate allows and adversarial ones derived from them or written by hand. Signatures are made
 * with node:crypto directly so any header/payload TEXT can be signed (duplicate members, BOMs,
 * invalid UTF-8, odd spacing) — jose's signers refuse most of these.
 */
import { constants, createHmac, KeyObject, sign as cryptoSign } from 'node:crypto';
import fc from 'fast-check';
import type { TestKey } from '../fixtures/keys.ts';
import { AUDIENCE, ISSUER_A, ISSUER_B, LOCATION, NOW } from '../fixtures/tokens.ts';

const b64u = (b: Uint8Array | string): string => Buffer.from(b).toString('base64url');

/** Group orders of P-256 and P-384, for high-S signatures (s → n − s verifies the same message). */
export const ORDER: Record<string, bigint> = {
  ES256: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  ES384: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
};

export interface SignOptions {
  /** RSA-PSS salt length (jose uses exactly 32 for PS256). */
  readonly saltLength?: number;
  /** ECDSA signature encoding: P1363 is what JOSE uses; DER must be refused. */
  readonly dsaEncoding?: 'ieee-p1363' | 'der';
  /** Sign as this JOSE alg (e.g. RS256 with a key whose header says PS256). */
  readonly as?: string;
}

/** Signs exactly the given header and payload bytes (UTF-8 text or raw bytes). */
export function signBytes(key: TestKey, header: Uint8Array | string, payload: Uint8Array | string, o: SignOptions = {}): string {
  const input = `${b64u(header)}.${b64u(payload)}`;
  return `${input}.${b64u(rawSignature(key, input, o))}`;
}

export function rawSignature(key: TestKey, input: string, o: SignOptions = {}): Buffer {
  const k = key.privateKey instanceof KeyObject ? key.privateKey : KeyObject.from(key.privateKey as never);
  const data = Buffer.from(input);
  switch (o.as ?? key.alg) {
    case 'ES256':
      return cryptoSign('sha256', data, { key: k, dsaEncoding: o.dsaEncoding ?? 'ieee-p1363' });
    case 'ES384':
      return cryptoSign('sha384', data, { key: k, dsaEncoding: o.dsaEncoding ?? 'ieee-p1363' });
    case 'RS256':
      return cryptoSign('sha256', data, k);
    case 'PS256':
      return cryptoSign('sha256', data, { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: o.saltLength ?? 32 });
    case 'EdDSA':
    case 'Ed25519':
      return cryptoSign(null, data, k);
    default:
      throw new TypeError(`rawSignature: ${key.alg}`);
  }
}

/** The same ECDSA signature with s replaced by n − s (valid for OpenSSL, so for jose). */
export function highS(token: string, alg: 'ES256' | 'ES384'): string {
  const dot = token.lastIndexOf('.');
  const sig = Buffer.from(token.slice(dot + 1), 'base64url');
  const half = sig.length / 2;
  const s = BigInt(`0x${sig.subarray(half).toString('hex')}`);
  const flipped = Buffer.from((ORDER[alg]! - s).toString(16).padStart(half * 2, '0'), 'hex');
  return `${token.slice(0, dot + 1)}${b64u(Buffer.concat([sig.subarray(0, half), flipped]))}`;
}

export function header(key: TestKey, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { alg: key.alg, kid: key.kid, typ: 'jit+jwt', ...extra };
}

export function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: ISSUER_A,
    aud: AUDIENCE,
    sub: 'spiffe://prod/ci',
    jti: 'jti-1',
    iat: NOW,
    exp: NOW + 300,
    authorization_details: [{ type: 'jit_grant', actions: ['GET'], locations: [LOCATION], paths: ['/orders/**'] }],
    ...extra,
  };
}

/** Mostly `valid`, sometimes one of `others`: most generated tokens pass, each rule still gets hit. */
function mostly(valid: unknown, ...others: unknown[]): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 12, arbitrary: fc.constant(valid) }, { weight: 1, arbitrary: fc.constantFrom(...others) });
}

/** Valid-looking claims with generated values: most verify, some fail jitgate's claim rules. */
export function claimsArbitrary(): fc.Arbitrary<Record<string, unknown>> {
  const text = fc.oneof(
    { weight: 6, arbitrary: fc.string({ minLength: 1, maxLength: 20 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 8 }) },
    { weight: 1, arbitrary: fc.constantFrom('a\u0000b', ' lead', 'é', '\u{1F600}', '') },
  );
  return fc.record({
    iss: mostly(ISSUER_A, ISSUER_B, 'https://nobody', 1),
    aud: mostly(AUDIENCE, [AUDIENCE, 'x'], 'other', ['other'], 7, [7]),
    sub: text,
    jti: text,
    iat: mostly(NOW, NOW - 10, NOW + 60, '1', 0, NOW + 0.25),
    exp: mostly(NOW + 300, NOW - 1, NOW + 100_000, null, NOW + 0.5),
    nbf: mostly(undefined, NOW - 5, NOW + 60, 'x'),
    txn: mostly(undefined, 'deploy-1', '', 5),
    act: mostly(undefined, { sub: 'agent' }, { sub: 1 }, []),
    cnf: mostly(undefined, { jkt: 'abc' }, { jkt: '' }, 'jkt'),
    extra: fc.jsonValue({ maxDepth: 3 }),
    authorization_details: mostly(
      [{ type: 'jit_grant', actions: ['GET'], locations: [LOCATION], paths: ['/orders/**'] }],
      [{ type: 'other' }],
      [{ type: 'jit_grant', actions: 'GET' }],
      {},
    ),
  });
}

/** Single-character and structural damage to a token; every result is a new string. */
export function mutations(token: string, rnd: () => number): string[] {
  const [h, p, s] = token.split('.') as [string, string, string];
  const at = (len: number): number => Math.floor(rnd() * len);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const flip = (seg: string): string => {
    const i = at(seg.length);
    return seg.slice(0, i) + alphabet[(alphabet.indexOf(seg[i]!) + 1 + at(63)) % 64] + seg.slice(i + 1);
  };
  // The last character of a segment carries trailing bits: alternatives that decode to the same bytes.
  const trailing = (seg: string): string => {
    const rem = seg.length % 4;
    if (rem === 0) return seg;
    const c = alphabet.indexOf(seg[seg.length - 1]!);
    const free = rem === 2 ? 0x0f : 0x03;
    return seg.slice(0, -1) + alphabet[(c & ~free) | ((c + 1) & free)];
  };
  return [
    `${flip(h)}.${p}.${s}`,
    `${h}.${flip(p)}.${s}`,
    `${h}.${p}.${flip(s)}`,
    `${h}.${p}.${trailing(s)}`,
    `${trailing(h)}.${p}.${s}`,
    `${h}.${trailing(p)}.${s}`,
    `${h}.${p}.${s.slice(0, -1)}`,
    `${h}.${p}.${s.slice(0, -2)}`,
    `${h}.${p}.${s}A`,
    `${h}.${p}.${s}AA`,
    `${h}.${p}.${s}AAAA`,
    `${h}.${p}.${s}=`,
    `${h}=.${p}.${s}`,
    `${h}.${p} .${s}`,
    `${h}.${p}.${s.slice(0, 10)} ${s.slice(10)}`,
    `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}`,
    `${h}.${p}.`,
    `${h}..${s}`,
    `.${p}.${s}`,
    `${h}.${p}`,
    `${h}.${p}.${s}.`,
    `${h}.${p}.${s}.${s}`,
    `${p}.${h}.${s}`,
    ` ${token}`,
    `${token}\n`,
  ];
}

/** Hand cases over raw header/payload TEXT, each signed properly by `key`. */
export function handCases(key: TestKey): string[] {
  const hd = (extra: Record<string, unknown> = {}): string => JSON.stringify(header(key, extra));
  const cl = (extra: Record<string, unknown> = {}): string => JSON.stringify(claims(extra));
  const body = cl();
  const texts: [string, string | Uint8Array][] = [
    [hd(), body],
    [`{"alg":"${key.alg}","alg":"${key.alg}","kid":"${key.kid}","typ":"jit+jwt"}`, body],
    [hd(), body.replace('{', `{"sub":"admin",`)],
    [hd(), body.replace('{', '{"\\u0069ss":"https://evil",')],
    [hd(), body.replace('"sub"', '"\\u0073ub"')],
    [`{"\\u0061lg":"${key.alg}","kid":"${key.kid}","typ":"jit+jwt"}`, body],
    [hd({ crit: ['b64'], b64: false }), body],
    [hd({ crit: ['b64'], b64: true }), body],
    [hd({ crit: ['exp'] }), body],
    [hd({ crit: [] }), body],
    [hd({ crit: 'b64' }), body],
    [hd({ b64: false }), body],
    [hd({ b64: 'false' }), body],
    [hd({ b64: 0 }), body],
    [hd({ b64: null }), body],
    [hd({ b64: true }), body],
    [hd({ alg: 'none' }), body],
    [hd({ alg: 'HS256' }), body],
    [hd({ alg: '' }), body],
    [hd({ alg: 5 }), body],
    [hd({ alg: undefined }), body],
    [hd({ kid: 5 }), body],
    [hd({ kid: '' }), body],
    [hd({ kid: undefined }), body],
    [hd({ kid: 'no-such-kid' }), body],
    [hd({ typ: 'JWT' }), body],
    [hd({ typ: 'application/jit+jwt' }), body],
    [hd({ typ: 'APPLICATION/JIT+JWT' }), body],
    [hd({ typ: undefined }), body],
    [hd({ jwk: { kty: 'oct', k: 'AAAA' } }), body],
    [hd({ jku: 'https://evil/jwks' }), body],
    [`\uFEFF${hd()}`, body],
    [hd(), `\uFEFF${body}`],
    [hd(), `\uFEFF\uFEFF${body}`],
    [` ${hd()} `, ` ${body}\n`],
    [hd(), '[]'],
    [hd(), 'null'],
    [hd(), '123'],
    [hd(), '"a string"'],
    [hd(), ''],
    ['[]', body],
    ['null', body],
    [hd(), body.slice(0, -1)],
    [hd(), `${body}x`],
    [hd(), `${body}{}`],
    [hd(), Buffer.concat([Buffer.from(body.slice(0, -1)), Buffer.from([0x2c, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])])],
    [hd(), Buffer.concat([Buffer.from(body.slice(0, -1)), Buffer.from(',"x":"\xed\xa0\x80"}', 'latin1')])],
    [hd(), body.replace(`"exp":${NOW + 300}`, '"exp":1e400')],
    [hd(), body.replace(`"exp":${NOW + 300}`, `"exp":${NOW + 300}.000000000000000000001`)],
    [hd(), body.replace(`"exp":${NOW + 300}`, '"exp":-0')],
    [hd(), body.replace(`"iat":${NOW}`, `"iat":${NOW}e0`)],
    [hd(), body.replace(`"exp":${NOW + 300}`, `"exp":"${NOW + 300}"`)],
    [hd(), body.replace(`"exp":${NOW + 300}`, '"exp":123456789012345678901234567890')],
    [hd(), body.replace('{', `{"deep":${'['.repeat(2000)}${']'.repeat(2000)},`)],
    [hd(), body.replace('{', `{"deep":${'{"a":'.repeat(500)}1${'}'.repeat(500)},`)],
    [hd(), body.replace('{', '{"__proto__":{"sub":"admin"},')],
    [hd(), body.replace('{', '{"__proto__":1,"__proto__":2,')],
    [hd(), body.replace('"spiffe://prod/ci"', '"spiffe:\\/\\/prod\\/ci"')],
    [hd(), body.replace('"spiffe://prod/ci"', '"\\ud800"')],
    [hd(), body.replace('"spiffe://prod/ci"', '"\\u00e9"')],
    [hd(), cl({ sub: 'x'.repeat(1025) })],
    [hd(), cl({ aud: [AUDIENCE, AUDIENCE] })],
  ];
  const out = texts.map(([h, p]) => signBytes(key, h, p));
  // HS256 keyed with the public JWK text (algorithm confusion) and an unsigned token.
  const input = `${b64u(hd({ alg: 'HS256' }))}.${b64u(body)}`;
  out.push(`${input}.${b64u(createHmac('sha256', JSON.stringify(key.publicJwk)).update(input).digest())}`);
  out.push(`${b64u(hd({ alg: 'none' }))}.${b64u(body)}.`);
  return out;
}

/**
 * ECDSA signatures whose r and s sit at the edges of their DER encoding (jws-signature.ts turns
 * r‖s into DER): genuine signatures found by signing until r, then s, starts with a zero byte, or
 * with a byte ≥ 0x80; and made-up ones: zero, one, the group order n, n − 1, n + 1 and all ones.
 * Returns the tokens meant to verify (genuine) and those meant to be refused.
 */
export function ecdsaEdgeSignatures(key: TestKey, alg: 'ES256' | 'ES384', header: string, payload: string): { valid: string[]; invalid: string[] } {
  const half = alg === 'ES256' ? 32 : 48;
  const found = new Map<string, Buffer>();
  const wanted = ['r0', 's0', 'rHigh', 'sHigh', 'rLow', 'sLow'];
  for (let i = 0; i < 20_000 && found.size < wanted.length; i++) {
    const p = `${payload.slice(0, -1)},"n":${i}}`;
    const input = `${b64u(header)}.${b64u(p)}`;
    const sig = rawSignature(key, input);
    const tags = [sig[0] === 0 ? 'r0' : sig[0]! >= 0x80 ? 'rHigh' : 'rLow', sig[half] === 0 ? 's0' : sig[half]! >= 0x80 ? 'sHigh' : 'sLow'];
    for (const t of tags) if (!found.has(t)) found.set(t, Buffer.from(`${input}.${b64u(sig)}`));
  }
  if (found.size < wanted.length) throw new Error(`ecdsaEdgeSignatures: found only ${[...found.keys()].join(', ')}`);
  const valid = [...found.values()].map((b) => b.toString());
  const input = `${b64u(header)}.${b64u(payload)}`;
  const genuine = rawSignature(key, input);
  const r = genuine.subarray(0, half);
  const s = genuine.subarray(half);
  const n = ORDER[alg]!;
  const int = (v: bigint): Buffer => Buffer.from(v.toString(16).padStart(half * 2, '0').slice(-half * 2), 'hex');
  const ones = (1n << BigInt(half * 8)) - 1n;
  const edges = [0n, 1n, n - 1n, n, n + 1n, ones].map(int);
  const invalid: string[] = [];
  for (const e of edges) {
    invalid.push(`${input}.${b64u(Buffer.concat([e, s]))}`, `${input}.${b64u(Buffer.concat([r, e]))}`, `${input}.${b64u(Buffer.concat([e, e]))}`);
  }
  // r + n and s + n do not fit; r and s swapped is another (wrong) signature.
  invalid.push(`${input}.${b64u(Buffer.concat([s, r]))}`);
  return { valid, invalid };
}
