/**
 * Development signing keys: a key pair and the JWKS an issuer entry can point `jwks_file` at (SPEC §6, §8). The
 * library form of `jitgate keys`, reused by `jitgate demo` and the bench.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';

/** Algorithms a grant token may use (SPEC §1): asymmetric only. */
export const SUPPORTED_ALGS: readonly string[] = Object.freeze(['EdDSA', 'ES256', 'ES384', 'PS256', 'RS256']);

export const DEFAULT_ALG = 'ES256';
export const PRIVATE_KEY_FILE = 'private.jwk.json';
export const JWKS_FILE = 'jwks.json';

export interface DevKeysOptions {
  /** One of {@link SUPPORTED_ALGS}; default ES256. EdDSA uses Ed25519. */
  alg?: string;
  /** Key id; default the RFC 7638 SHA-256 thumbprint of the public key. */
  kid?: string;
  /** Replace an existing `private.jwk.json` instead of refusing. */
  force?: boolean;
}

export interface DevKeys {
  kid: string;
  alg: string;
  privatePath: string;
  jwksPath: string;
}

/** Refusal to replace a private key that is already there: losing it would orphan every JWKS that lists it. */
export class KeyFileExistsError extends Error {
  readonly code = 'JITGATE_KEY_FILE_EXISTS';
  readonly path: string;
  constructor(path: string) {
    super(`${path} already exists; pass --force to replace it`);
    this.name = 'KeyFileExistsError';
    this.path = path;
  }
}

/**
 * Generates a key pair and writes `dir/private.jwk.json` (mode 0600, the private JWK with `kid`, `alg`, `use`)
 * and `dir/jwks.json` (`{"keys":[public JWK]}`). `dir` is created with mode 0700 when missing.
 *
 * @throws TypeError for an unsupported `alg` or an empty `kid`; {@link KeyFileExistsError} unless `force`.
 */
export async function generateDevKeys(dir: string, opts: DevKeysOptions = {}): Promise<DevKeys> {
  const alg = opts.alg ?? DEFAULT_ALG;
  if (!SUPPORTED_ALGS.includes(alg)) {
    throw new TypeError(`unsupported alg "${alg}"; expected one of ${SUPPORTED_ALGS.join(', ')}`);
  }
  if (opts.kid !== undefined && opts.kid === '') throw new TypeError('kid must be a non-empty string');

  const privatePath = join(dir, PRIVATE_KEY_FILE);
  const jwksPath = join(dir, JWKS_FILE);
  // Checked before the (slow, for RSA) generation so the refusal is immediate; the exclusive create below still
  // closes the race with a concurrent writer.
  if (opts.force !== true && (await exists(privatePath))) throw new KeyFileExistsError(privatePath);
  // A key set written before (perhaps published, perhaps with other keys in it) is not replaced unasked either.
  if (opts.force !== true && (await exists(jwksPath))) throw new KeyFileExistsError(jwksPath);

  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = opts.kid ?? (await calculateJwkThumbprint(publicJwk, 'sha256'));
  const meta = { kid, alg, use: 'sig' };
  const privateJwk = { ...(await exportJWK(privateKey)), ...meta };

  await mkdir(dir, { recursive: true, mode: 0o700 });
  const privateText = `${JSON.stringify(privateJwk, null, 2)}\n`;
  if (opts.force === true) {
    // writeFile's mode only applies on create, so an existing file would keep its old mode: write a fresh
    // 0600 file beside it and rename it into place (atomic on one filesystem).
    const tmp = join(dir, `.${PRIVATE_KEY_FILE}.${randomUUID()}.tmp`);
    try {
      await writeFile(tmp, privateText, { mode: 0o600, flag: 'wx' });
      await rename(tmp, privatePath);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  } else {
    try {
      await writeFile(privatePath, privateText, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new KeyFileExistsError(privatePath);
      throw err;
    }
  }
  await writeFile(jwksPath, `${JSON.stringify({ keys: [{ ...publicJwk, ...meta }] }, null, 2)}\n`);
  return { kid, alg, privatePath, jwksPath };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
