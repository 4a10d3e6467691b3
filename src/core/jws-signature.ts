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
 *
 * The key goes to node:crypto as a bare KeyObject whenever the algorithm allows it. Node 24 tells
 * a KeyObject from an options object `{ key, dsaEncoding | padding }` by trying to read its
 * internal slots and catching the TypeError (internal/crypto/keys.js isKeyObject, isCryptoKey), so
 * an options object costs two thrown TypeErrors, each capturing a stack trace of the whole request
 * (5.8 % of the gate's CPU in a pinned profile of the 10,000-token row; 30–45 µs per ES256 verify
 * under a 30-frame stack in process: bench/README.md). ECDSA
 * signatures are therefore turned from IEEE P1363 (r‖s) into DER here — the conversion node:crypto
 * itself does for `dsaEncoding: 'ieee-p1363'` — and RSA-PSS, which needs its options, is called with
 * stack traces off for the duration of the call.
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
  /** ECDSA: the JWS signature is r‖s and goes to OpenSSL as DER (`key` is then a bare KeyObject). */
  readonly p1363: boolean;
  /** `key` is an options object: node:crypto throws and catches two TypeErrors per call to read it. */
  readonly keyOptions: boolean;
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
      return { hash: alg === 'ES256' ? 'sha256' : 'sha384', key, length: alg === 'ES256' ? 64 : 96, unusable: false, p1363: true, keyOptions: false };
    }
    case 'PS256':
    case 'RS256': {
      if (key.asymmetricKeyType !== 'rsa') return null;
      const bits = d.modulusLength ?? 0;
      const length = Math.ceil(bits / 8);
      const unusable = bits < 2048;
      if (alg === 'RS256') return { hash: 'sha256', key, length, unusable, p1363: false, keyOptions: false };
      return { hash: 'sha256', key: { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, length, unusable, p1363: false, keyOptions: true };
    }
    case 'EdDSA':
    case 'Ed25519':
      if (key.asymmetricKeyType !== 'ed25519') return null;
      return { hash: null, key, length: 64, unusable: false, p1363: false, keyOptions: false };
    default:
      return null;
  }
}

/**
 * DER `SEQUENCE { INTEGER r, INTEGER s }` of a P1363 signature (r‖s, two equal halves of the
 * curve's size), as node:crypto builds it for `dsaEncoding: 'ieee-p1363'`: each integer big-endian,
 * minimal (leading zero bytes dropped, one kept for zero), with a 0x00 in front when its first byte
 * has the high bit set, so it stays positive. Any r and s encode; OpenSSL then judges them. The
 * lengths fit the short DER length form for P-256 and P-384 (at most 2 × 51 content bytes).
 */
export function p1363ToDer(sig: Buffer): Buffer {
  const half = sig.length >> 1;
  let r = 0;
  while (r < half - 1 && sig[r] === 0) r++;
  let s = half;
  while (s < sig.length - 1 && sig[s] === 0) s++;
  const rPad = sig[r]! >= 0x80 ? 1 : 0;
  const sPad = sig[s]! >= 0x80 ? 1 : 0;
  const rLen = half - r + rPad;
  const sLen = sig.length - s + sPad;
  const out = Buffer.allocUnsafe(6 + rLen + sLen);
  out[0] = 0x30;
  out[1] = 4 + rLen + sLen;
  out[2] = 0x02;
  out[3] = rLen;
  let o = 4;
  if (rPad === 1) out[o++] = 0;
  o += sig.copy(out, o, r, half);
  out[o++] = 0x02;
  out[o++] = sLen;
  if (sPad === 1) out[o++] = 0;
  sig.copy(out, o, s, sig.length);
  return out;
}

/** The signing input: the ASCII of header.payload (the token was checked to be base64url and dots). */
function signingInput(token: string, dot2: number): Buffer {
  return Buffer.from(token.slice(0, dot2), 'latin1');
}

/** Synchronous: on the calling thread. A throw from OpenSSL (malformed signature) is a bad signature. */
export function verifySync(p: SignatureParams, token: string, dot2: number, signature: Buffer): boolean {
  if (signature.length !== p.length) return false;
  const stackLimit = Error.stackTraceLimit;
  if (p.keyOptions) Error.stackTraceLimit = 0;
  try {
    return verify(p.hash, signingInput(token, dot2), p.key, p.p1363 ? p1363ToDer(signature) : signature);
  } catch {
    return false;
  } finally {
    Error.stackTraceLimit = stackLimit;
  }
}

/** On libuv's thread pool; `done` is called exactly once, on the event loop. */
export function verifyPooled(p: SignatureParams, token: string, dot2: number, signature: Buffer, done: (ok: boolean) => void): void {
  if (signature.length !== p.length) {
    done(false);
    return;
  }
  const stackLimit = Error.stackTraceLimit;
  if (p.keyOptions) Error.stackTraceLimit = 0;
  let threw = false;
  try {
    verify(p.hash, signingInput(token, dot2), p.key, p.p1363 ? p1363ToDer(signature) : signature, (err, ok) => done(err === null && ok));
  } catch {
    threw = true;
  } finally {
    Error.stackTraceLimit = stackLimit;
  }
  if (threw) done(false);
}

interface QueuedCheck {
  readonly p: SignatureParams;
  readonly token: string;
  readonly dot2: number;
  readonly signature: Buffer;
  readonly done: (ok: boolean) => void;
}

/** The misses of the current loop turn, checked together by `checkQueued` (verify-mode.ts `batch`). */
let queued: QueuedCheck[] = [];

/** Every signature first, then every continuation: the crypto runs back to back, and so does the proxy's code. */
function checkQueued(): void {
  const checks = queued;
  queued = [];
  const results = new Array<boolean>(checks.length);
  for (let i = 0; i < checks.length; i++) {
    const c = checks[i]!;
    results[i] = verifySync(c.p, c.token, c.dot2, c.signature);
  }
  for (let i = 0; i < checks.length; i++) checks[i]!.done(results[i]!);
}

/** On the event loop, after the I/O of this turn; `done` is called exactly once and must not throw (it would strand the rest of the turn). */
export function verifyBatched(p: SignatureParams, token: string, dot2: number, signature: Buffer, done: (ok: boolean) => void): void {
  if (queued.push({ p, token, dot2, signature, done }) === 1) setImmediate(checkQueued);
}
