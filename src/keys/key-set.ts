/**
 * An issuer's verification keys, imported once. A token names its key by `kid`; the header
 * fields `jwk`, `jku`, `x5u` and `x5c` are never used to find a key (SPEC §1, §6).
 *
 * Entries are reused across refreshes when the JWK is unchanged, so a cached verification stays
 * valid exactly as long as its key is in the current set (`has`).
 */
import { importJWK, type JWK } from 'jose';
import type { Algorithm } from '../core/algorithms.ts';

/** Verifying key as jose accepts it (a WebCrypto CryptoKey in Node). */
export type VerifyKey = Awaited<ReturnType<typeof importJWK>>;

export interface KeyEntry {
  readonly kid: string | undefined;
  /** Canonical JSON of the public JWK: identity across refreshes. */
  readonly fingerprint: string;
  /** Imported key per algorithm this JWK may verify (WebCrypto keys are bound to one algorithm). */
  readonly keys: ReadonlyMap<string, VerifyKey>;
}

/** Which JWK kty/crv an algorithm needs. */
const ALG_KEY_TYPE: ReadonlyMap<string, { kty: string; crv?: string }> = new Map([
  ['EdDSA', { kty: 'OKP', crv: 'Ed25519' }],
  ['Ed25519', { kty: 'OKP', crv: 'Ed25519' }],
  ['ES256', { kty: 'EC', crv: 'P-256' }],
  ['ES384', { kty: 'EC', crv: 'P-384' }],
  ['PS256', { kty: 'RSA' }],
  ['RS256', { kty: 'RSA' }],
]);

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

export class KeySet {
  readonly #byKid: Map<string, KeyEntry>;
  readonly #entries: Set<KeyEntry>;

  constructor(entries: readonly KeyEntry[]) {
    this.#entries = new Set(entries);
    this.#byKid = new Map();
    for (const e of entries) if (e.kid !== undefined && !this.#byKid.has(e.kid)) this.#byKid.set(e.kid, e);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The entry that verifies this kid and alg; without a kid only when exactly one key fits. */
  entryFor(kid: string | undefined, alg: string): KeyEntry | undefined {
    if (kid !== undefined) {
      const e = this.#byKid.get(kid);
      return e?.keys.has(alg) ? e : undefined;
    }
    let found: KeyEntry | undefined;
    for (const e of this.#entries) {
      if (!e.keys.has(alg)) continue;
      if (found !== undefined) return undefined; // ambiguous without a kid: refuse rather than guess
      found = e;
    }
    return found;
  }

  has(entry: KeyEntry): boolean {
    return this.#entries.has(entry);
  }

  hasKid(kid: string): boolean {
    return this.#byKid.has(kid);
  }

  entries(): IterableIterator<KeyEntry> {
    return this.#entries.values();
  }
}

export interface ImportResult {
  readonly set: KeySet;
  /** Keys skipped, with why (logged by the caller; a JWKS may legitimately hold keys for other uses). */
  readonly skipped: readonly string[];
}

/**
 * Validates a JWKS document and imports every usable key for the allowed algorithms.
 * `previous` lets unchanged keys keep their entry (and so their cached verifications).
 * Throws a plain Error with a precise message when the document itself is unusable.
 */
export async function importJwks(doc: unknown, algorithms: readonly Algorithm[], previous?: KeySet): Promise<ImportResult> {
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) {
    throw new Error('JWKS must be a JSON object with a "keys" array');
  }
  const reuse = new Map<string, KeyEntry>();
  if (previous) for (const e of previous.entries()) reuse.set(e.fingerprint, e);

  const entries: KeyEntry[] = [];
  const skipped: string[] = [];
  const seenKids = new Set<string>();
  const list = (doc as { keys: unknown[] }).keys;
  for (let i = 0; i < list.length; i++) {
    const jwk = list[i];
    const where = `keys[${i}]`;
    if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) {
      skipped.push(`${where}: not an object`);
      continue;
    }
    const j = jwk as Record<string, unknown>;
    if (PRIVATE_MEMBERS.some((m) => Object.hasOwn(j, m))) {
      skipped.push(`${where}: contains private or symmetric key material; refused`);
      continue;
    }
    if (j.use !== undefined && j.use !== 'sig') {
      skipped.push(`${where}: use is not "sig"`);
      continue;
    }
    // RFC 7517 §4.3: with key_ops, a key is for the operations it lists (unique strings); jose refuses a verify by one without "verify".
    if (j.key_ops !== undefined && !keyOpsAllowVerify(j.key_ops)) {
      skipped.push(`${where}: key_ops is not a list of distinct strings that names "verify"`);
      continue;
    }
    if (j.kid !== undefined && (typeof j.kid !== 'string' || j.kid === '')) {
      skipped.push(`${where}: kid is not a non-empty string`);
      continue;
    }
    const kid = j.kid as string | undefined;
    if (kid !== undefined && seenKids.has(kid)) {
      skipped.push(`${where}: duplicate kid ${JSON.stringify(kid)}`);
      continue;
    }
    // jose refuses RSA keys under 2048 bits when verifying: such a key is skipped here, with why, rather than
    // loaded and every token it signed refused as malformed_token (a black-box probe saw it counted as a key).
    const rsaBits = j.kty === 'RSA' && typeof j.n === 'string' ? modulusBits(j.n) : undefined;
    if (rsaBits !== undefined && rsaBits < 2048) {
      skipped.push(`${where}: an RSA key of ${rsaBits} bits; at least 2048 are needed`);
      continue;
    }
    const weak = j.kty === 'RSA' ? weakRsa(j.n, j.e, rsaBits) : undefined;
    if (weak !== undefined) {
      skipped.push(`${where}: ${weak}; refused`);
      continue;
    }
    const publicJwk = pickPublic(j);
    // The JWK's `alg` is part of what the key is: an issuer that changes it changes which tokens the
    // key verifies, so the entry (and its imports) must not be reused (a review found an RS256 import
    // kept after the JWK said PS256, so gates disagreed by history).
    const fingerprint = JSON.stringify(typeof j.alg === 'string' ? { ...publicJwk, alg: j.alg } : publicJwk);
    const old = reuse.get(fingerprint);
    if (old !== undefined) {
      entries.push(old);
      if (kid !== undefined) seenKids.add(kid);
      continue;
    }
    const keys = new Map<string, VerifyKey>();
    for (const alg of algorithms) {
      const want = ALG_KEY_TYPE.get(alg);
      if (!want || want.kty !== j.kty || (want.crv !== undefined && want.crv !== j.crv)) continue;
      if (typeof j.alg === 'string' && j.alg !== alg && !(isEd(j.alg) && isEd(alg))) continue;
      try {
        keys.set(alg, await importJWK(publicJwk as JWK, alg));
      } catch (err) {
        skipped.push(`${where}: cannot import for ${alg}: ${(err as Error).message}`);
      }
    }
    if (keys.size === 0) {
      skipped.push(`${where}: fits none of the allowed algorithms (${algorithms.join(', ')})`);
      continue;
    }
    if (kid !== undefined) seenKids.add(kid);
    entries.push(Object.freeze({ kid, fingerprint, keys }));
  }
  return { set: new KeySet(entries), skipped };
}

function isEd(alg: string): boolean {
  return alg === 'EdDSA' || alg === 'Ed25519';
}

function keyOpsAllowVerify(ops: unknown): boolean {
  return Array.isArray(ops) && ops.every((o) => typeof o === 'string') && new Set(ops).size === ops.length && ops.includes('verify');
}

/** Only the public members jose needs; anything else in the JWK (x5c, key_ops…) is not trusted. */
function pickPublic(j: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { kty: j.kty };
  for (const m of ['crv', 'x', 'y', 'n', 'e'] as const) if (j[m] !== undefined) out[m] = j[m];
  if (j.kid !== undefined) out.kid = j.kid;
  return out;
}

/** The bit length of an RSA modulus given as base64url (the JWK `n`), leading zero bytes not counted. */
/**
 * Why an RSA public key is unusable although it imports, or undefined: an exponent of 1 makes every
 * "signature" its own padded hash (anyone can forge one), an even exponent or modulus is no RSA key,
 * and a modulus past 16,384 bits costs a verification per forged token that no issuer needs (a review).
 */
function weakRsa(n: unknown, e: unknown, bits: number | undefined): string | undefined {
  if (typeof n !== 'string' || typeof e !== 'string') return undefined; // jose refuses it on import
  const eb = Buffer.from(e, 'base64url');
  const nb = Buffer.from(n, 'base64url');
  let start = 0;
  while (start < eb.length && eb[start] === 0) start++;
  const significant = eb.length - start;
  if (significant === 0 || (significant === 1 && eb[start]! < 3)) return 'an RSA exponent below 3';
  if (significant > 4) return 'an RSA exponent of more than 32 bits';
  if ((eb[eb.length - 1]! & 1) === 0) return 'an even RSA exponent';
  if (nb.length === 0 || (nb[nb.length - 1]! & 1) === 0) return 'an even RSA modulus';
  if (bits !== undefined && bits > 16_384) return `an RSA key of ${bits} bits; at most 16384 are accepted`;
  return undefined;
}

function modulusBits(n: string): number {
  const bytes = Buffer.from(n, 'base64url');
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  if (i === bytes.length) return 0;
  return (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i]!));
}
