/**
 * Signed audit checkpoints (SPEC §12): an Ed25519 signature (node:crypto, RFC 8032) over where the
 * hash chain stood, so the chain up to that point can be vouched for by anyone holding the public
 * key — an editor of the log file who lacks the private key cannot recompute it.
 *
 * The signed bytes (the canonical form) are UTF-8 text, six lines joined by "\n", no trailing newline:
 *
 *   jitgate-audit-checkpoint/2
 *   <chain id, empty for a single process; "w1", "w2"… for cluster workers>
 *   <seq of the last line covered, decimal>
 *   <hex SHA-256 of that line, lower case>
 *   <time of the checkpoint, ISO 8601 UTC as written in the line (also its outer "time")>
 *   <pid of the writing process, decimal (the line's "pid")>
 *
 * /2 adds the pid: with it every value of a checkpoint line is either signed or a constant, so the
 * verifier can rebuild the whole line from them and nothing in the last checkpoint, which no later
 * line's prev covers, can be edited or added unnoticed.
 *
 * The checkpoint a graceful stop writes (and only it) signs a seventh line, `final`, and its line
 * says `"final":true`. A chain that ends (or is continued by a restart) at a checkpoint without it
 * did not stop gracefully there: a file cut right after a periodic checkpoint is told from a file a
 * graceful stop closed. The two forms differ in their number of lines, so neither signature can
 * pass for the other.
 *
 * The signature is base64url without padding, in the checkpoint line's `checkpoint.sig`.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { canonicalBase64url } from '../core/base64url.ts';
import { StartupError } from '../errors.ts';

export const CHECKPOINT_FORMAT = 'jitgate-audit-checkpoint/2';

export interface CheckpointSigner {
  readonly kid: string | undefined;
  sign(chain: string, seq: number, hash: string, time: string, pid: number, final: boolean): string;
}

export function canonicalCheckpoint(chain: string, seq: number, hash: string, time: string, pid: number, final = false): Buffer {
  return Buffer.from(`${CHECKPOINT_FORMAT}\n${chain}\n${seq}\n${hash}\n${time}\n${pid}${final ? '\nfinal' : ''}`, 'utf8');
}

const KEY = 'log.audit_checkpoint_key';

/** Reads the private Ed25519 JWK (`jitgate keys --alg EdDSA` writes one); every problem names the key. */
export async function loadCheckpointSigner(file: string): Promise<CheckpointSigner> {
  let jwk: Record<string, unknown>;
  try {
    jwk = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new StartupError(`${KEY}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof jwk !== 'object' || jwk === null || jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.d !== 'string') {
    throw new StartupError(`${KEY}: ${file} is not a private Ed25519 JWK (kty OKP, crv Ed25519, with "d"); make one with "jitgate keys --alg EdDSA --out DIR"`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: jwk as never, format: 'jwk' });
  } catch (err) {
    throw new StartupError(`${KEY}: ${file}: ${(err as Error).message}`, { cause: err });
  }
  const kid = typeof jwk.kid === 'string' ? jwk.kid : undefined;
  return {
    kid,
    sign: (chain, seq, hash, time, pid, final) => sign(null, canonicalCheckpoint(chain, seq, hash, time, pid, final), key).toString('base64url'),
  };
}

/** Public Ed25519 keys of a JWKS by kid (keys without kid under ''); other key types are skipped. */
export function checkpointKeys(jwks: unknown): Map<string, KeyObject> {
  const out = new Map<string, KeyObject>();
  const keys = (jwks as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new TypeError('not a JWKS: expected {"keys": [...]}');
  for (const k of keys as Record<string, unknown>[]) {
    if (typeof k !== 'object' || k === null || k.kty !== 'OKP' || k.crv !== 'Ed25519' || typeof k.x !== 'string') continue;
    // The checkpoint key itself where its public JWKS belongs: whoever reads this file could forge checkpoints.
    if (k.d !== undefined) throw new TypeError('a key holds private material ("d"): give the public JWKS (jwks.json from "jitgate keys --alg EdDSA"), and keep the private key with the gate only');
    const kid = typeof k.kid === 'string' ? k.kid : '';
    // Which of two keys under one kid signed a checkpoint is not for the verifier to guess (the last
    // one silently won: a genuine log read as forged, or another key's checkpoints as genuine).
    if (out.has(kid)) throw new TypeError(kid === '' ? 'two Ed25519 keys without a kid: name each key (kid)' : `two Ed25519 keys with kid ${JSON.stringify(kid)}: each kid must name one key`);
    out.set(kid, createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k.x }, format: 'jwk' }));
  }
  return out;
}

/**
 * True when `sig` is a valid signature of the canonical form by `key`, written in the one spelling the gate
 * writes: Buffer's base64url decoder skips padding, spaces and characters outside the alphabet and ignores a
 * last character's spare bits, so a final checkpoint — the one line no later `prev` covers — could carry other
 * bytes, free text included, and still verify (an auditor's independent verifier, 2026-12-08).
 */
export function verifyCheckpoint(key: KeyObject, chain: string, seq: number, hash: string, time: string, pid: number, final: boolean, sig: string): boolean {
  try {
    const bytes = canonicalBase64url(sig);
    if (bytes === undefined) return false;
    return verify(null, canonicalCheckpoint(chain, seq, hash, time, pid, final), key, bytes);
  } catch {
    return false;
  }
}
