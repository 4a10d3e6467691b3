/**
 * Key files for the developer CLI: reading a private JWK (`jitgate keys` writes one), its public
 * part, and the RFC 7638 thumbprint that binds a token to it (`cnf.jkt`, RFC 9449 §6).
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { calculateJwkThumbprint, type JWK } from 'jose';

/** Reads a private JWK file; a JWKS or non-JSON file is a TypeError that says which file. */
export async function readKeyFile(path: string): Promise<JWK> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    if (err instanceof SyntaxError) throw new TypeError(`${path} is not JSON: ${err.message}`);
    throw err;
  }
  if (typeof parsed === 'object' && parsed !== null && 'keys' in parsed) {
    throw new TypeError(`${path} is a JWKS (public keys); pass the private key file (private.jwk.json)`);
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
  const jwk = typeof key === 'string' ? await readKeyFile(key) : key;
  return calculateJwkThumbprint(publicJwkOf(jwk), 'sha256');
}

