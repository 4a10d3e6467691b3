/**
 * Server-provided DPoP nonces (RFC 9449 §8): an HMAC-SHA256 of the current time bucket under a
 * random key. A nonce is accepted in its own bucket and the next, so it lives between one and two
 * `nonce_rotation` intervals; nothing is stored per client. With `workers` > 1 the primary makes
 * the key and every worker derives the same nonces from it (src/cluster.ts); with a `redis` block
 * every gate on the prefix takes the fleet's key from Redis at start (src/fleet/redis-nonce-key.ts).
 *
 * @module
 */
import { createHmac, randomBytes } from 'node:crypto';

export class DpopNonces {
  #key: Buffer;
  readonly #rotationMs: number;
  #bucket = Number.NaN;
  #current = '';
  #previous = '';

  /** `key` is for tests; by default 32 random bytes. */
  constructor(rotationMs: number, key: Buffer = randomBytes(32)) {
    if (!(rotationMs >= 1)) throw new TypeError('rotationMs must be at least 1');
    this.#rotationMs = rotationMs;
    this.#key = key;
  }

  /** Derive from `key` from now on: the cluster's or the fleet's shared key, handed over by Gate.start. */
  useKey(key: Buffer): void {
    this.#key = key;
    this.#bucket = Number.NaN;
  }

  /** The nonce to hand out now (the `DPoP-Nonce` header). */
  current(nowMs: number): string {
    this.#advance(nowMs);
    return this.#current;
  }

  /** Whether a proof's `nonce` claim is this bucket's or the previous one's. */
  accepts(nonce: unknown, nowMs: number): boolean {
    if (typeof nonce !== 'string') return false;
    this.#advance(nowMs);
    return nonce === this.#current || nonce === this.#previous;
  }

  #advance(nowMs: number): void {
    const bucket = Math.floor(nowMs / this.#rotationMs);
    if (bucket === this.#bucket) return;
    this.#previous = bucket - 1 === this.#bucket ? this.#current : this.#mac(bucket - 1);
    this.#current = this.#mac(bucket);
    this.#bucket = bucket;
  }

  #mac(bucket: number): string {
    return createHmac('sha256', this.#key).update(String(bucket)).digest('base64url');
  }
}
