/**
 * Token forging for the attack corpus. jose refuses to build most of these (duplicate JSON keys,
 * HS256 with a public key as the secret, hand-made signatures), so the compact form is assembled
 * here from raw JSON text and signed with node:crypto directly.
 */
import { constants, createHmac, createPublicKey, KeyObject, sign as cryptoSign } from 'node:crypto';
import type { TestKey } from '../fixtures/keys.ts';
import { AUDIENCE, b64u, ISSUER_A, LOCATION } from '../fixtures/tokens.ts';

/** The fixture's base64url and unsigned compact form, for the corpora that import from here. */
export { b64u, forge } from '../fixtures/tokens.ts';

export const nowSec = (): number => Math.floor(Date.now() / 1000);

/** A valid grant payload for issuer A issued now: GET/PATCH on /orders/42 and below (undefined deletes a claim). */
export function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSec();
  const base: Record<string, unknown> = {
    iss: ISSUER_A,
    aud: AUDIENCE,
    sub: 'spiffe://prod/ci-deployer',
    jti: `jti-${Math.random().toString(36).slice(2)}`,
    iat: now,
    exp: now + 300,
    authorization_details: [{ type: 'jit_grant', actions: ['GET', 'PATCH'], locations: [LOCATION], paths: ['/orders/42', '/orders/42/**'] }],
    ...overrides,
  };
  return Object.fromEntries(Object.entries(base).filter(([, v]) => v !== undefined));
}

/** The default protected header for `key` (undefined deletes a member). */
export function header(key: TestKey, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const h: Record<string, unknown> = { alg: key.alg, kid: key.kid, typ: 'jit+jwt', ...overrides };
  return Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined));
}

/** Signs the exact header and payload TEXT given (so it may hold duplicate keys, odd spacing, …). */
export function signText(key: TestKey, headerText: string, payloadText: string, alg = key.alg): string {
  const input = `${b64u(headerText)}.${b64u(payloadText)}`;
  return `${input}.${signature(key, input, alg)}`;
}

function signature(key: TestKey, input: string, alg: string): string {
  const k = KeyObject.from(key.privateKey as never);
  const data = Buffer.from(input);
  switch (alg) {
    case 'ES256':
      return cryptoSign('sha256', data, { key: k, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    case 'RS256':
      return cryptoSign('sha256', data, k).toString('base64url');
    case 'PS256':
      return cryptoSign('sha256', data, { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }).toString('base64url');
    case 'EdDSA':
      return cryptoSign(null, data, k).toString('base64url');
    default:
      throw new TypeError(`signText: ${alg}`);
  }
}

/** A properly signed token with JSON header/payload objects. */
export function signed(key: TestKey, payload: Record<string, unknown> = claims(), hdr: Record<string, unknown> = header(key)): string {
  return signText(key, JSON.stringify(hdr), JSON.stringify(payload));
}

/** HS256/384/512 over header.payload with `secret` (e.g. the issuer's public key as PEM or JWK text). */
export function hmacToken(alg: 'HS256' | 'HS384' | 'HS512', secret: string | Buffer, hdr: Record<string, unknown>, payload: Record<string, unknown>): string {
  const input = `${b64u(JSON.stringify({ ...hdr, alg }))}.${b64u(JSON.stringify(payload))}`;
  const hash = alg === 'HS256' ? 'sha256' : alg === 'HS384' ? 'sha384' : 'sha512';
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
}

/** The public key of `key` as SPKI PEM: the secret of the classic RS256→HS256 confusion. */
export function publicPem(key: TestKey): string {
  return createPublicKey(KeyObject.from(key.privateKey as never)).export({ format: 'pem', type: 'spki' }) as string;
}
