/**
 * `jitgate keys`: make a development signing key pair and the JWKS an issuer entry can point `jwks_file` at
 * (SPEC §6, §8). `generateDevKeys` is the library form, reused by `jitgate demo`.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import { commandUsageError, parseCommand } from './args.ts';

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

const USAGE = `Usage: jitgate keys --out DIR [--alg ALG] [--kid ID] [--force]

Generate a development key pair for signing grant tokens.

  --out DIR    directory to write ${PRIVATE_KEY_FILE} (mode 0600) and ${JWKS_FILE}; created (0700) if missing
  --alg ALG    ${SUPPORTED_ALGS.join(' | ')} (default ${DEFAULT_ALG}; EdDSA uses Ed25519)
  --kid ID     key id (default: RFC 7638 SHA-256 thumbprint of the public key)
  --force      replace an existing ${PRIVATE_KEY_FILE}
  -h, --help   show this help
`;

/** CLI entry: exit 0 on success, 1 when the keys could not be written, 2 on a usage error. */
export async function run(argv: string[]): Promise<number> {
  const values = parseCommand(
    argv,
    { out: { type: 'string' }, alg: { type: 'string' }, kid: { type: 'string' }, force: { type: 'boolean' } },
    USAGE,
    usageError,
  );
  if (typeof values === 'number') return values;
  if (values.out === undefined || values.out === '') return usageError('missing required option --out DIR');
  const alg = values.alg ?? DEFAULT_ALG;
  if (!SUPPORTED_ALGS.includes(alg)) {
    return usageError(`--alg: unsupported "${alg}"; expected one of ${SUPPORTED_ALGS.join(', ')}`);
  }
  if (values.kid === '') return usageError('--kid: must not be empty');

  try {
    const keys = await generateDevKeys(values.out, { alg, kid: values.kid, force: values.force });
    process.stdout.write(
      `private key: ${keys.privatePath}\njwks:        ${keys.jwksPath}\nkid:         ${keys.kid}\nalg:         ${keys.alg}\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`jitgate keys: ${(err as Error).message}\n`);
    return 1;
  }
}

function usageError(message: string): number {
  return commandUsageError('keys', message);
}
