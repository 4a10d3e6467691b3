/**
 * Proof `jti`s seen within the iat window (RFC 9449 §11.1): a DPoP proof is single-use.
 *
 * Bounded by `dpop.replay_cache_entries`. When full, expired entries are dropped, earliest expiry
 * first; if none has expired the NEW proof is refused (`full`) rather than an unexpired jti evicted. Evicting would let whoever floods the cache (it takes a valid bound token
 * and its key) replay a captured proof whose jti was pushed out while its iat is still in the window.
 * Refusing instead fails closed: under such a flood DPoP requests are refused until entries age out
 * (at most 2 × iat_window), and the flood is visible in the audit log by `sub`.
 * Sizing: entries ≥ peak DPoP requests/s × iat_window (a proof is normally kept iat_window).
 * With `workers` > 1 the primary holds the one cache and workers ask it (shared-dpop-replay.ts).
 *
 * Expiry order is kept in a min-heap beside the map, not taken from insertion order: a proof dated
 * ahead (a fast clock, or a flooder's choice; up to one window) lives longer than proofs recorded
 * after it, and at the front of an insertion-ordered sweep it held every expired entry behind it
 * (a probe: one such proof in a cache of 10 kept the other 9 for a second window, and an honest
 * client lost 6 of 30 proofs to `full`). `add` is synchronous: the check and the insert cannot
 * interleave with another request.
 *
 * @module
 */
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
  readonly #until = new Map<string, number>();
  /** A binary min-heap of (expiry, key), as two arrays; a node whose key was recorded again since is stale and skipped. */
  readonly #heapMs: number[] = [];
  readonly #heapKey: string[] = [];
  readonly #max: number;
  readonly stats: ReplayStats = { fresh: 0, replays: 0, refusedFull: 0 };

  constructor(maxEntries: number) {
    if (!(Number.isInteger(maxEntries) && maxEntries >= 1)) throw new TypeError('maxEntries must be a positive integer');
    this.#max = maxEntries;
  }

  /** Whether `jti` is used and not yet expired: a cheap early refusal; {@link add} is the authority. */
  has(jti: string, nowMs: number, jkt?: string): boolean {
    const seen = this.#until.get(proofKey(jti, jkt));
    return seen !== undefined && seen >= nowMs;
  }

  /** Records `jti` as used until `untilMs` unless it already is. */
  add(jti: string, untilMs: number, nowMs: number, jkt?: string): ReplayOutcome {
    const key = proofKey(jti, jkt);
    const seen = this.#until.get(key);
    if (seen !== undefined && seen >= nowMs) {
      this.stats.replays++;
      return 'replay';
    }
    // An expired entry recorded again leaves a stale node; sweeping when stale nodes could outnumber live
    // entries keeps the heap within twice the bound (a sweep removes every node that has expired).
    if ((seen === undefined && this.#until.size >= this.#max) || this.#heapMs.length >= 2 * this.#max) {
      this.#dropExpired(nowMs);
      if (seen === undefined && this.#until.size >= this.#max) {
        this.stats.refusedFull++;
        return 'full';
      }
    }
    this.#until.set(key, untilMs);
    this.#push(untilMs, key);
    this.stats.fresh++;
    return 'fresh';
  }

  get size(): number {
    return this.#until.size;
  }

  #dropExpired(nowMs: number): void {
    const ms = this.#heapMs;
    while (ms.length > 0 && ms[0]! < nowMs) {
      const key = this.#heapKey[0]!;
      if (this.#until.get(key) === ms[0]) this.#until.delete(key);
      this.#pop();
    }
  }

  #push(untilMs: number, key: string): void {
    const ms = this.#heapMs;
    const keys = this.#heapKey;
    let i = ms.length;
    ms.push(untilMs);
    keys.push(key);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (ms[parent]! <= untilMs) break;
      ms[i] = ms[parent]!;
      keys[i] = keys[parent]!;
      i = parent;
    }
    ms[i] = untilMs;
    keys[i] = key;
  }

  #pop(): void {
    const ms = this.#heapMs;
    const keys = this.#heapKey;
    const lastMs = ms.pop()!;
    const lastKey = keys.pop()!;
    const n = ms.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && ms[child + 1]! < ms[child]!) child++;
      if (ms[child]! >= lastMs) break;
      ms[i] = ms[child]!;
      keys[i] = keys[child]!;
      i = child;
    }
    ms[i] = lastMs;
    keys[i] = lastKey;
  }
}
