/**
 * Proof `jti`s seen within the iat window (RFC 9449 §11.1): a DPoP proof is single-use.
 *
 * Bounded by `dpop.replay_cache_entries`. When full, expired entries are dropped from the oldest
 * end; if the oldest entry is still unexpired the NEW proof is refused (`full`) rather than an
 * unexpired jti evicted. Evicting would let whoever floods the cache (it takes a valid bound token
 * and its key) replay a captured proof whose jti was pushed out while its iat is still in the window.
 * Refusing instead fails closed: under such a flood DPoP requests are refused until entries age out
 * (at most 2 × iat_window), and the flood is visible in the audit log by `sub`.
 * Sizing: entries ≥ peak DPoP requests/s × iat_window (a proof is normally kept iat_window).
 * With `workers` > 1 the primary holds the one cache and workers ask it (shared-dpop-replay.ts).
 *
 * Entries are never read with `get`, so recency is insertion order and the oldest end is where
 * expiry is (nearly) earliest; an unexpired entry there stops the sweep, which only errs toward
 * refusing. `add` is synchronous: the check and the insert cannot interleave with another request.
 *
 * @module
 */
import { LRUCache } from 'lru-cache';

/** `unavailable`: a remote guard (Redis) could not record the proof; the request fails closed with 503. */
export type ReplayOutcome = 'fresh' | 'replay' | 'full' | 'unavailable';

export interface ReplayStats {
  fresh: number;
  replays: number;
  refusedFull: number;
}

/**
 * Where a proof's jti is recorded: this process's cache, or (cluster workers) the primary's, so a
 * proof is single-use across every worker (src/cache/shared-dpop-replay.ts).
 */
export interface ReplayGuard {
  /** A cheap early refusal; `add` is the authority. `jkt` as in {@link add}. */
  has(jti: string, nowMs: number, jkt?: string): boolean;
  /**
   * Records `jti` as used until `untilMs` unless it already is; checking and recording are one step.
   * `jkt` (the bound key's thumbprint) lets a fleet-wide guard key proofs per client, so two
   * clients' jtis never collide (src/fleet/redis-replay.ts).
   */
  add(jti: string, untilMs: number, nowMs: number, jkt?: string): ReplayOutcome | Promise<ReplayOutcome>;
  readonly stats: ReplayStats;
}

/**
 * A proof is named by its client's key and its jti: another client's proof with the same jti is a
 * different proof (as in the Redis guard), so no client can spend another's jtis (a review found the
 * local and cluster caches keyed by jti alone: a predictable jti could be blocked by anyone).
 */
const proofKey = (jti: string, jkt: string | undefined): string => (jkt === undefined ? jti : `${jkt} ${jti}`);

export class DpopReplayCache implements ReplayGuard {
  /** `jkt jti` → epoch ms until which a second use is a replay. */
  readonly #lru: LRUCache<string, number>;
  readonly #max: number;
  readonly stats: ReplayStats = { fresh: 0, replays: 0, refusedFull: 0 };

  constructor(maxEntries: number) {
    if (!(Number.isInteger(maxEntries) && maxEntries >= 1)) throw new TypeError('maxEntries must be a positive integer');
    this.#max = maxEntries;
    this.#lru = new LRUCache({ max: maxEntries });
  }

  /** Whether `jti` is used and not yet expired: a cheap early refusal; {@link add} is the authority. */
  has(jti: string, nowMs: number, jkt?: string): boolean {
    const seen = this.#lru.peek(proofKey(jti, jkt));
    return seen !== undefined && seen >= nowMs;
  }

  /** Records `jti` as used until `untilMs` unless it already is. */
  add(jti: string, untilMs: number, nowMs: number, jkt?: string): ReplayOutcome {
    const key = proofKey(jti, jkt);
    const seen = this.#lru.peek(key);
    if (seen !== undefined && seen >= nowMs) {
      this.stats.replays++;
      return 'replay';
    }
    if (seen === undefined && this.#lru.size >= this.#max) {
      this.#dropExpired(nowMs);
      if (this.#lru.size >= this.#max) {
        this.stats.refusedFull++;
        return 'full';
      }
    }
    this.#lru.set(key, untilMs);
    this.stats.fresh++;
    return 'fresh';
  }

  get size(): number {
    return this.#lru.size;
  }

  #dropExpired(nowMs: number): void {
    while (this.#lru.size > 0) {
      const oldest = this.#lru.rkeys().next().value!;
      if (this.#lru.peek(oldest)! >= nowMs) return;
      this.#lru.delete(oldest);
    }
  }
}
