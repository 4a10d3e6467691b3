/**
 * The signature call of the cache-miss path, on node:crypto (OpenSSL) directly instead of jose →
 * WebCrypto, whose JS layer costs about half the rate (bench/README.md). No cryptography here:
 * only which OpenSSL call, with which parameters, matching what jose asks WebCrypto for:
 *   - ES256/ES384: ECDSA over SHA-256/384, the signature in IEEE P1363 form (r‖s, RFC 7518 §3.4);
 *     high-S signatures are accepted, as OpenSSL and so jose accept them;
 *   - PS256: RSASSA-PSS, SHA-256, MGF1-SHA-256, salt length exactly 32 (jose's `saltLength: 32`);
 *   - RS256: RSASSA-PKCS1-v1_5, SHA-256; RSA keys under 2048 bits are refused, as jose does;
 *   - EdDSA/Ed25519: Ed25519 (no pre-hash).
 * Keys stay imported by jose (CryptoKey, src/keys/key-set.ts); each is turned into a KeyObject
 * once, on first use, and remembered beside it.
 *
 * Two forms: synchronous (on the event loop) and callback (libuv's thread pool). Which one a gate
 * uses is chosen from its cores (verify-mode.ts).
 */
import { constants, KeyObject, verify, type VerifyKeyObjectInput, type VerifyPublicKeyInput } from 'node:crypto';

export interface SignatureParams {
  /** Digest name for node:crypto, null for Ed25519. */
  readonly hash: string | null;
  readonly key: KeyObject | VerifyKeyObjectInput | VerifyPublicKeyInput;
  /** Exact signature length in bytes; any other length is a bad signature without a call. */
  readonly length: number;
  /** An RSA key jose refuses to use (< 2048 bits): a refusal of the token, as with jose. */
  readonly unusable: boolean;
}

const cache = new WeakMap<object, SignatureParams | null>();

/** The node:crypto parameters for a key jose imported for `alg`; null when the alg is not one we verify. */
export function signatureParams(cryptoKey: object, alg: string): SignatureParams | null {
  let p = cache.get(cryptoKey);
  if (p === undefined) {
    p = build(KeyObject.from(cryptoKey as Parameters<typeof KeyObject.from>[0]), alg);
    cache.set(cryptoKey, p);
  }
  return p;
}

function build(key: KeyObject, alg: string): SignatureParams | null {
  const d = key.asymmetricKeyDetails ?? {};
  switch (alg) {
    case 'ES256':
    case 'ES384': {
      const curve = alg === 'ES256' ? 'prime256v1' : 'secp384r1';
      if (key.asymmetricKeyType !== 'ec' || d.namedCurve !== curve) return null;
      return { hash: alg === 'ES256' ? 'sha256' : 'sha384', key: { key, dsaEncoding: 'ieee-p1363' }, length: alg === 'ES256' ? 64 : 96, unusable: false };
    }
    case 'PS256':
    case 'RS256': {
      if (key.asymmetricKeyType !== 'rsa') return null;
      const bits = d.modulusLength ?? 0;
      const length = Math.ceil(bits / 8);
      const unusable = bits < 2048;
      if (alg === 'RS256') return { hash: 'sha256', key, length, unusable };
      return { hash: 'sha256', key: { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, length, unusable };
    }
    case 'EdDSA':
    case 'Ed25519':
      if (key.asymmetricKeyType !== 'ed25519') return null;
      return { hash: null, key, length: 64, unusable: false };
    default:
      return null;
  }
}

/** The signing input: the ASCII of header.payload (the token was checked to be base64url and dots). */
function signingInput(token: string, dot2: number): Buffer {
  return Buffer.from(token.slice(0, dot2), 'latin1');
}

/** Synchronous: on the calling thread. A throw from OpenSSL (malformed signature) is a bad signature. */
export function verifySync(p: SignatureParams, token: string, dot2: number, signature: Buffer): boolean {
  if (signature.length !== p.length) return false;
  try {
    return verify(p.hash, signingInput(token, dot2), p.key, signature);
  } catch {
    return false;
  }
}

/** On libuv's thread pool; `done` is called exactly once, on the event loop. */
export function verifyPooled(p: SignatureParams, token: string, dot2: number, signature: Buffer, done: (ok: boolean) => void): void {
  if (signature.length !== p.length) {
    done(false);
    return;
  }
  try {
    verify(p.hash, signingInput(token, dot2), p.key, signature, (err, ok) => done(err === null && ok));
  } catch {
    done(false);
  }
}
