/**
 * Tokens whose signature recently failed, so replaying one forged token costs a lookup instead
 * of parsing and an OpenSSL verify each time (issue 20). Bounded LRU; like the verified-token
 * cache (verified-tokens.ts) entries are found by the token's last 43 characters (signature) and
 * count only when the whole token is equal, so a forged token that borrows a real token's
 * signature can never make that real token look bad.
 *
 * A refusal holds only while the key it failed against is still the issuer's: if the set changes
 * (a rotated key reusing the kid), the token is verified afresh.
 */
import { LRUCache } from 'lru-cache';
import type { IssuerKeys } from '../keys/issuer-keys.ts';
import type { KeyEntry } from '../keys/key-set.ts';
import { tokenCacheKey } from './token-key.ts';

interface Entry {
  readonly token: string;
  readonly keys: IssuerKeys;
  readonly key: KeyEntry;
}

export class BadSignatureCache {
  readonly #lru: LRUCache<string, Entry> | undefined;
  hits = 0;

  /** maxEntries 0 disables it. Memory is bounded by maxEntries × the largest token accepted. */
  constructor(maxEntries: number) {
    this.#lru = maxEntries > 0 ? new LRUCache({ max: maxEntries }) : undefined;
  }

  /** The token failed its signature check against a key that is still in its issuer's set. */
  has(token: string): boolean {
    const lru = this.#lru;
    if (lru === undefined || lru.size === 0) return false;
    const e = lru.get(tokenCacheKey(token));
    if (e === undefined || e.token !== token) return false;
    if (!e.keys.has(e.key)) {
      lru.delete(tokenCacheKey(token));
      return false;
    }
    this.hits++;
    return true;
  }

  add(token: string, keys: IssuerKeys, key: KeyEntry): void {
    this.#lru?.set(tokenCacheKey(token), { token, keys, key });
  }

  get size(): number {
    return this.#lru?.size ?? 0;
  }
}
