/**
 * Token string → VerifiedToken. Only successes are stored; a hit skips signature and static
 * claim checks, while expiry, key membership and revocation are re-checked by the caller.
 *
 * Entries are found by the token's last 43 characters (all signature: 256 bits of it, the whole of
 * an HS256 signature) and count only when the whole token is equal. A cache hit then hashes 43
 * characters instead of the whole token (600+), which V8 does afresh for every request's new
 * string — a visible share of the cached path (bench/README.md); a fixed-length suffix also
 * spares the search for the last dot. A token that shares a cached token's key but differs
 * anywhere else is a miss and leaves the cached entry alone.
 *
 * Admission once full: while there is room every verified token is stored; once the cache holds
 * max_entries, a token is stored only on its second miss within the last 4 × max_entries misses
 * (doorkeeper.ts). Tokens seen once — a working set larger than the cache, a scan of one-off
 * tokens — then neither push out the tokens that are used again nor turn every miss into an
 * entry that lives for max_entries misses and dies in the old generation (bench/README.md).
 */
import { LRUCache } from 'lru-cache';
import type { VerifiedToken } from '../core/verified-token.ts';
import { Doorkeeper } from './doorkeeper.ts';
import { tokenCacheKey } from './token-key.ts';

export interface CacheStats {
  hits: number;
  misses: number;
}

interface Entry {
  readonly token: string;
  readonly verified: VerifiedToken;
}

export class VerifiedTokenCache {
  readonly #lru: LRUCache<string, Entry> | undefined;
  readonly #door: Doorkeeper;
  readonly stats: CacheStats = { hits: 0, misses: 0 };

  /** maxEntries 0 disables caching (every request verifies). */
  constructor(maxEntries: number) {
    this.#lru = maxEntries > 0 ? new LRUCache({ max: maxEntries }) : undefined;
    this.#door = new Doorkeeper(4 * maxEntries);
  }

  get(token: string): VerifiedToken | undefined {
    const e = this.#lru?.get(tokenCacheKey(token));
    const hit = e !== undefined && e.token === token ? e.verified : undefined;
    if (hit === undefined) this.stats.misses++;
    else this.stats.hits++;
    return hit;
  }

  /** Stores a verified token, unless the cache is full and the token was not missed recently. */
  set(token: string, verified: VerifiedToken): void {
    const lru = this.#lru;
    if (lru === undefined) return;
    const key = tokenCacheKey(token);
    if (lru.size >= lru.max && !lru.has(key) && !this.#door.seenBefore(key)) return;
    lru.set(key, { token, verified });
  }

  /** Removes the entry for exactly this token (not another token that shares its signature segment). */
  delete(token: string): void {
    const lru = this.#lru;
    if (lru === undefined) return;
    const key = tokenCacheKey(token);
    if (lru.peek(key)?.token === token) lru.delete(key);
  }

  get size(): number {
    return this.#lru?.size ?? 0;
  }
}
