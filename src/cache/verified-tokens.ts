/**
 * Token string → VerifiedToken. Only successes are stored; a hit skips signature and static
 * claim checks, while expiry, key membership and revocation are re-checked by the caller.
 */
import { LRUCache } from 'lru-cache';
import type { VerifiedToken } from '../core/verified-token.ts';

export interface CacheStats {
  hits: number;
  misses: number;
}

export class VerifiedTokenCache {
  readonly #lru: LRUCache<string, VerifiedToken> | undefined;
  readonly stats: CacheStats = { hits: 0, misses: 0 };

  /** maxEntries 0 disables caching (every request verifies). */
  constructor(maxEntries: number) {
    this.#lru = maxEntries > 0 ? new LRUCache({ max: maxEntries }) : undefined;
  }

  get(token: string): VerifiedToken | undefined {
    const hit = this.#lru?.get(token);
    if (hit === undefined) this.stats.misses++;
    else this.stats.hits++;
    return hit;
  }

  set(token: string, verified: VerifiedToken): void {
    this.#lru?.set(token, verified);
  }

  delete(token: string): void {
    this.#lru?.delete(token);
  }

  get size(): number {
    return this.#lru?.size ?? 0;
  }
}
