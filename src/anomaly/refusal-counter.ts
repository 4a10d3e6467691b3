/**
 * Per-token refusal counts in a sliding window (SPEC §12). Each tracked token keeps the times of
 * its last `threshold` refusals in a ring; the threshold is crossed when the oldest of those lies
 * within `window` of the newest — an exact sliding window, not fixed buckets that an attacker
 * could straddle.
 *
 * Memory is bounded: at most `maxTracked` tokens (an LRU), each with `threshold` numbers. A caller
 * rotating through many tokens evicts the least recently refused ones and never grows the table;
 * it needs a fresh valid token per slot, and each still has to reach the threshold on its own.
 */
import { LRUCache } from 'lru-cache';
import type { Config } from '../config/schema.ts';

/**
 * How long one crossing keeps later refusals of the token from crossing again (at most the window).
 * The one told of a crossing may never revoke: a cluster worker whose count's answer came after it
 * gave up waiting (a stalled primary), a gate that died, a write that failed and whose rearm was
 * lost. Held for good, or for a whole window, that leaves the token free to probe; lapsing after a
 * few seconds (well past the ~1 s a revocation takes to land), the next refusal over the threshold
 * tries again. A revocation that did land makes the token's requests 401 `revoked`, never counted.
 * The Redis counter (src/fleet/redis-refusal-counter.ts) holds its flag as long.
 */
export const TRIP_HOLD_MS = 5_000;

/**
 * Whether a gate counts refusals in Redis, with every gate on it (src/fleet/redis-refusal-counter.ts),
 * rather than in this process or at its cluster primary: where the revocation is fleet-wide, so is the
 * count that triggers it. The one rule the wiring, the worker and the primary all follow.
 */
export function countsInRedis(config: Config): boolean {
  return config.anomaly !== undefined && config.revocation.redis;
}

interface Counter {
  readonly times: Float64Array;
  next: number;
  filled: number;
  /** When the threshold was last crossed: one burst revokes once (cleared when a revocation fails, lapses after the hold). */
  trippedAt: number | undefined;
}

/** What one refusal did to its token's count. */
export interface Counted {
  /** Refusals of this token within the window, this one included (at most the threshold). */
  readonly inWindow: number;
  /** True exactly once per crossing: the caller revokes now. */
  readonly crossed: boolean;
}

/** Where refusals are counted: here (RefusalCounter), or for a cluster worker at the primary (primary-counter.ts). */
export interface RefusalCounting {
  add(key: string, nowMs: number): Counted | Promise<Counted>;
  rearm(key: string): void;
}

export class RefusalCounter implements RefusalCounting {
  readonly #threshold: number;
  readonly #windowMs: number;
  readonly #holdMs: number;
  readonly #lru: LRUCache<string, Counter>;

  constructor(threshold: number, windowMs: number, maxTracked: number) {
    this.#threshold = threshold;
    this.#windowMs = windowMs;
    this.#holdMs = Math.min(windowMs, TRIP_HOLD_MS);
    this.#lru = new LRUCache({ max: maxTracked });
  }

  get size(): number {
    return this.#lru.size;
  }

  /** Counts one refusal of the token `key` at `nowMs`. */
  add(key: string, nowMs: number): Counted {
    let c = this.#lru.get(key);
    if (c === undefined) {
      c = { times: new Float64Array(this.#threshold), next: 0, filled: 0, trippedAt: undefined };
      this.#lru.set(key, c);
    }
    const n = this.#threshold;
    c.times[c.next] = nowMs;
    c.next = (c.next + 1) % n;
    if (c.filled < n) c.filled++;
    // Refusals older than the window no longer count (the ring holds the newest `filled`, oldest first from `next`).
    let inWindow = 0;
    for (let i = 0; i < c.filled; i++) if (nowMs - c.times[(c.next - 1 - i + n) % n]! <= this.#windowMs) inWindow++;
    // Times come from the refusing workers and may arrive out of order: only a crossing at or
    // after the hold's end lifts it.
    const held = c.trippedAt !== undefined && nowMs - c.trippedAt < this.#holdMs;
    const crossed = inWindow >= n && !held;
    if (crossed) c.trippedAt = nowMs;
    return { inWindow, crossed };
  }

  /** A revocation failed: the next refusal over the threshold tries again. */
  rearm(key: string): void {
    const c = this.#lru.peek(key);
    if (c !== undefined) c.trippedAt = undefined;
  }
}
