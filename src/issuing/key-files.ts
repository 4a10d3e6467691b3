/**
 * Key files for the developer CLI: reading a private JWK (`jitgate keys` writes one), its public
 * part, and the RFC 7638 thumbprint that binds a token to it (`cnf.jkt`, RFC 9449 §6).
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { calculateJwkThumbprint, type JWK } from 'jose';

/**
 * Reads a private JWK file given on the command line as `flag`; a file that cannot be read, is not
 * JSON or is a JWKS is an error that names the flag and the file (a bare ENOENT left a new user
 * guessing which of the command's files it meant).
 */
export async function readKeyFile(path: string, flag = '--key'): Promise<JWK> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`${flag} ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new TypeError(`${flag} ${path} is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TypeError(`${flag} ${path} is not a JWK (a JSON object); pass the private key file (private.jwk.json)`);
  }
  // Own member only: every array has a `keys` method, and `[1]` read as a JWKS.
  if (Object.hasOwn(parsed, 'keys')) {
    throw new TypeError(`${flag} ${path} is a JWKS (public keys); pass the private key file (private.jwk.json)`);
  }
  return parsed as JWK;
}

/** The members each key type needs to be a public key (RFC 7638 §3.2); everything else is left out. */
const PUBLIC_MEMBERS: ReadonlyMap<string, readonly string[]> = new Map([
  ['EC', ['crv', 'x', 'y']],
  ['OKP', ['crv', 'x']],
  ['RSA', ['e', 'n']],
]);

/** The public part of a JWK: `kty` and the members its type needs, nothing private. */
export function publicJwkOf(jwk: JWK): JWK {
  const members = typeof jwk.kty === 'string' ? PUBLIC_MEMBERS.get(jwk.kty) : undefined;
  if (members === undefined) throw new TypeError(`key type ${JSON.stringify(jwk.kty)} cannot make DPoP proofs; use EC, OKP or RSA`);
  const src = jwk as Record<string, unknown>;
  const pub: Record<string, unknown> = { kty: jwk.kty };
  for (const m of members) {
    if (typeof src[m] !== 'string') throw new TypeError(`key is missing "${m}"`);
    pub[m] = src[m];
  }
  return pub as JWK;
}

/** RFC 7638 SHA-256 thumbprint of a key's public part: the `cnf.jkt` that binds a token to it. */
export async function dpopKeyThumbprint(key: JWK | string): Promise<string> {
  const jwk = typeof key === 'string' ? await readKeyFile(key, '--dpop-key') : key;
  return calculateJwkThumbprint(publicJwkOf(jwk), 'sha256');
}

