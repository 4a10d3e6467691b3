/**
 * One status list URI: the verified list in memory, its freshness, and the fetches that keep it
 * current (SPEC §10). `status()` is the hot path — a bit lookup with no allocation and no await.
 *
 * - The first token naming the list starts the first fetch; its request waits at most `timeout`
 *   (`settled`), later requests of that token do too until the fetch settles.
 * - Then the list is refreshed in the background every `refresh`, sooner when its `ttl` or `exp`
 *   says so, but never more often than once a second; after failures, with a backoff: 5 s, 10 s, 20 s, …
 *   up to min(refresh, 1 min) ({@link failureRetryMs}).
 * - One fetch in flight at a time: every caller shares it (coalescing). A list whose `iat` is older
 *   than the one held (a lagging CDN) never replaces it.
 * - A failed refresh keeps the last good list until `max_stale` has passed since it was last
 *   confirmed (200 or 304); then its tokens get 503 `status_list_stale` until a refresh succeeds.
 * - A list counts only while the key that verified it is in the issuer's key set (SPEC §6): once it
 *   leaves, the list is forgotten and fetched again, as for the first token naming it.
 * - A list nobody asked for during max(max_stale, 10 × refresh) is dropped and no longer refreshed;
 *   the next token naming it fetches it again. Under an issuer's lists (list-cache.ts) a dropped or
 *   evicted entry is *retired*: removed from the map, and tokens cached before, which still hold it,
 *   are answered through the entry that now stands for the URI (`successor`).
 */
import type { Clock } from '../core/clock.ts';
import type { StatusListFailure, StatusListHandle } from '../core/status-list.ts';
import type { IssuerKeys } from '../keys/issuer-keys.ts';
import type { KeyEntry } from '../keys/key-set.ts';
import { FetchError, type BoundedGetResult } from '../net/bounded-get.ts';
import { entryCount, type StatusBits } from './decode.ts';
import { verifyStatusList } from './verify-list.ts';

/** After a failed fetch, the first retry comes this soon (or after `refresh`, when shorter). */
export const FAILURE_RETRY_MS = 5_000;

/**
 * The longest wait between retries of a failing list, however long `refresh` is: a publisher that
 * recovers is seen within a minute (a list that never loaded refuses its tokens until then).
 */
export const MAX_FAILURE_RETRY_MS = 60_000;

/**
 * The delay before the next attempt after `failures` failed ones in a row: 5 s doubling to
 * min(refresh, 1 min). Flat 5 s retries of every failing list (a sharded publisher down, a broker
 * naming many lists that 404) once made ~200 fetches a second from 1,000 lists; with the backoff a
 * list that keeps failing costs one fetch a minute.
 */
export function failureRetryMs(failures: number, refreshMs: number): number {
  return Math.min(refreshMs, MAX_FAILURE_RETRY_MS, FAILURE_RETRY_MS * 2 ** Math.min(Math.max(failures - 1, 0), 10));
}

/**
 * No list is fetched more often than this (start to start), whatever `refresh`, `ttl` or `exp` say: a
 * list with a tiny ttl or an exp already near must not turn into a fetch loop against its publisher.
 */
export const MIN_REFETCH_MS = 1_000;

export interface StatusListSettings {
  readonly issuer: string;
  readonly algorithms: ReadonlySet<string>;
  readonly toleranceSec: number;
  readonly refreshMs: number;
  readonly maxStaleMs: number;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly maxListBytes: number;
}

/** The HTTP GET of a list (bounded-get.ts with `Accept: application/statuslist+jwt`, no redirects). */
export type ListGet = (uri: string, etag: string | undefined) => Promise<BoundedGetResult>;

export type FetchCause = 'first' | 'scheduled';

/** One fetch attempt, for metrics and logs. `result` is `ok`, `not_modified`, `older` or the failure reason. */
export interface StatusListFetchInfo {
  readonly issuer: string;
  readonly uri: string;
  readonly cause: FetchCause;
  readonly result: 'ok' | 'not_modified' | 'older' | StatusListFailure;
  readonly durationMs: number;
  /** Entries in the list held after this attempt (0 when none). */
  readonly entries: number;
  readonly bits: number;
  /** ms since the held list was last confirmed, undefined when none is held. */
  readonly ageMs: number | undefined;
  readonly nextInMs: number;
  readonly error?: Error;
}

export interface ListEntryDeps {
  readonly settings: StatusListSettings;
  readonly keys: IssuerKeys;
  readonly clock: Clock;
  readonly get: ListGet;
  readonly onFetch?: ((info: StatusListFetchInfo) => void) | undefined;
  /**
   * Who answers for the URI once this entry is retired (evicted, or dropped for disuse) and out of its
   * issuer's map: the current entry, a new one if there is room, or `status_list_capacity`. Tokens
   * cached before still hold this object, and must neither see a list it no longer refreshes nor
   * make it fetch again outside the map (and its cap). Absent (an entry built alone, in tests): a
   * dropped entry starts over itself, as before.
   */
  readonly successor?: ((uri: string) => StatusListHandle | 'status_list_capacity') | undefined;
  /** Told when the entry drops itself for disuse (and is now retired), so its issuer removes it from the map. */
  readonly onRetire?: ((entry: StatusListEntry) => void) | undefined;
}

export class StatusListEntry implements StatusListHandle {
  readonly uri: string;
  readonly #d: ListEntryDeps;
  #bytes: Uint8Array | undefined;
  /** The key that verified #bytes. */
  #key: KeyEntry | undefined;
  #bits: StatusBits = 1;
  #iat = 0;
  #expMs = Infinity;
  /** The held list's `exp` claim (without tolerance), for the refresh schedule. */
  #expClaimMs = Infinity;
  #ttlMs: number | undefined;
  #etag: string | undefined;
  /** When the held list was last confirmed current (200 with a list, or 304). */
  #freshAtMs = 0;
  /** The latest attempt's failure, cleared by a success. */
  #failure: StatusListFailure | undefined;
  /** What went wrong in that attempt (`HTTP 404`, …), for /readyz; only the reason when nothing more is known. */
  #failureDetail: string | undefined;
  #failingSinceMs: number | undefined;
  /** The first fetch has settled (a list or a failure is known). */
  #attempted = false;
  #inflight: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #usedAtMs: number;
  /** Failed attempts in a row, for the retry backoff; 0 after a success. */
  #failures = 0;
  #stopped = false;
  /** Out of its issuer's map: status() and settled() answer through `successor`. */
  #retired = false;
  /** Copies of what the hot path reads, so a lookup touches this object and the bytes only. */
  readonly #maxStaleMs: number;
  #count = 0;

  constructor(uri: string, deps: ListEntryDeps) {
    this.uri = uri;
    this.#d = deps;
    this.#maxStaleMs = deps.settings.maxStaleMs;
    // Counts as used from its creation: a new entry is not the least recently used one to evict.
    this.#usedAtMs = deps.clock.nowMs();
  }

  status(idx: number, nowMs: number): number | 'pending' | StatusListFailure {
    this.#usedAtMs = nowMs;
    const bytes = this.#bytes;
    if (bytes !== undefined && nowMs < this.#expMs) {
      // Its key left the set (removed, rotated out): a list signed by it no longer counts, not even
      // until max_stale (a review: a list signed by a withdrawn key kept deciding for max_stale).
      if (!this.#d.keys.has(this.#key!)) {
        this.#drop();
        return this.status(idx, nowMs);
      }
      if (nowMs - this.#freshAtMs > this.#maxStaleMs) return 'status_list_stale';
      if (idx >= this.#count) return 'status_index_out_of_range';
      const bit = idx * this.#bits;
      return (bytes[bit >>> 3]! >>> (bit & 7)) & ((1 << this.#bits) - 1);
    }
    if (this.#retired) {
      const next = this.#d.successor!(this.uri);
      return typeof next === 'string' ? next : next.status(idx, nowMs);
    }
    if (!this.#attempted) {
      void this.#fetch('first');
      return 'pending';
    }
    // A list past its exp that no refresh replaced: why the last attempt failed, else stale.
    return this.#failure ?? 'status_list_stale';
  }

  settled(): Promise<void> {
    if (this.#retired) {
      const next = this.#d.successor!(this.uri);
      return typeof next === 'string' ? Promise.resolve() : next.settled();
    }
    const inflight = this.#inflight;
    if (inflight === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.#d.settings.timeoutMs);
      timer.unref();
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      inflight.then(done, done);
    });
  }

  /**
   * Why this list's tokens are refused for want of a usable list, for /readyz; undefined while it
   * answers. A list that never loaded and one that went stale are told apart: the first is usually a
   * wrong URI or a broken publisher, the second a publisher that stopped answering.
   */
  problem(nowMs: number): string | undefined {
    const last = this.#failure === undefined ? '' : ` (last error: ${this.#failureDetail ?? this.#failure})`;
    if (this.#bytes === undefined) return this.#attempted && this.#failure !== undefined ? `has never loaded${last}` : undefined;
    if (nowMs >= this.#expMs) return `expired and no newer copy came${last}`;
    if (nowMs - this.#freshAtMs > this.#d.settings.maxStaleMs) return `has not been refreshed within max_stale${last}`;
    return undefined;
  }

  /** ms since the held list was last confirmed; undefined when none is held. */
  ageMs(nowMs: number): number | undefined {
    return this.#bytes === undefined ? undefined : nowMs - this.#freshAtMs;
  }

  get held(): boolean {
    return this.#bytes !== undefined;
  }

  /** When a token last asked this list for a status (or when the entry was made). */
  get usedAtMs(): number {
    return this.#usedAtMs;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Out of the issuer's map (evicted for room, or dropped for disuse): forget the list, fetch nothing
   * more, and answer through `successor` from now on. Called by the issuer's lists when they evict it
   * (after removing it from their map), and by the entry itself when it drops for disuse (`onRetire`
   * then removes it). A fetch still in flight ends within `timeout` and is discarded (#schedule).
   */
  retire(): void {
    this.#retired = true;
    this.stop();
    this.#drop();
  }

  #fetch(cause: FetchCause): Promise<void> {
    if (this.#inflight !== undefined) return this.#inflight;
    const p = this.#attempt(cause).finally(() => {
      this.#inflight = undefined;
    });
    this.#inflight = p;
    return p;
  }

  async #attempt(cause: FetchCause): Promise<void> {
    const { settings, clock } = this.#d;
    const started = clock.nowMs();
    let result: StatusListFetchInfo['result'];
    let error: Error | undefined;
    try {
      result = await this.#fetchAndApply(started);
    } catch (err) {
      error = err as Error;
      result = failureOf(err);
    }
    const now = clock.nowMs();
    if (result === 'ok' || result === 'not_modified') {
      this.#failure = undefined;
      this.#failureDetail = undefined;
      this.#failingSinceMs = undefined;
      this.#failures = 0;
    } else if (result !== 'older') {
      this.#failures++;
      this.#failure = result;
      this.#failureDetail = error === undefined ? undefined : `${result}: ${error.message}`;
      this.#failingSinceMs ??= now;
    }
    this.#attempted = true;
    const nextInMs = this.#schedule(started, now, result === 'ok' || result === 'not_modified' || result === 'older');
    const info: StatusListFetchInfo = {
      issuer: settings.issuer,
      uri: this.uri,
      cause,
      result,
      durationMs: now - started,
      entries: this.#bytes === undefined ? 0 : entryCount(this.#bytes.length, this.#bits),
      bits: this.#bits,
      ageMs: this.ageMs(now),
      nextInMs,
      ...(error === undefined ? {} : { error }),
    };
    try {
      this.#d.onFetch?.(info);
    } catch {
      // A failing reporter (a bug) must not turn the fetch every waiter shares into a rejection.
    }
  }

  async #fetchAndApply(startedMs: number): Promise<StatusListFetchInfo['result']> {
    const { settings, keys, clock } = this.#d;
    // A 304 comes only to a request that named the held copy's ETag (boundedGet refuses any other).
    const res = await this.#d.get(this.uri, this.#bytes === undefined ? undefined : this.#etag);
    if (res.status === 'not_modified') {
      this.#freshAtMs = startedMs;
      return 'not_modified';
    }
    const v = await verifyStatusList(res.body, {
      uri: this.uri,
      keys,
      algorithms: settings.algorithms,
      toleranceSec: settings.toleranceSec,
      maxListBytes: settings.maxListBytes,
      nowMs: clock.nowMs(),
    });
    if (typeof v === 'string') return v;
    if (this.#bytes !== undefined && v.iat < this.#iat) return 'older';
    this.#bytes = v.bytes;
    this.#key = v.key;
    this.#bits = v.bits;
    this.#count = entryCount(v.bytes.length, v.bits);
    this.#iat = v.iat;
    this.#expMs = v.expMs ?? Infinity;
    this.#expClaimMs = v.expClaimMs ?? Infinity;
    this.#ttlMs = v.ttlMs;
    this.#etag = res.etag;
    // Freshness counts from when the request went out: the list is at least that current.
    this.#freshAtMs = startedMs;
    return 'ok';
  }

  /**
   * Plans the next refresh; returns its delay (-1 when the list is dropped for disuse). Counted from
   * the start of the fetch that just ended, so a list refreshed on time is at most refresh + one fetch
   * (≤ timeout) old when the next one lands — the bound config validation holds max_stale above.
   */
  #schedule(startedMs: number, nowMs: number, ok: boolean): number {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#stopped) {
      // A retired entry answers through its successor: what a fetch in flight at retirement brought is discarded.
      if (this.#retired) this.#drop();
      return -1;
    }
    const s = this.#d.settings;
    if (nowMs - this.#usedAtMs > Math.max(s.maxStaleMs, 10 * s.refreshMs)) {
      // Under an issuer's lists the entry leaves the map (a URI nobody uses must not hold a slot
      // for the life of the process); alone, it only forgets the list.
      if (this.#d.onRetire === undefined) this.#drop();
      else {
        this.retire();
        this.#d.onRetire(this);
      }
      return -1;
    }
    let at = startedMs + (ok ? s.refreshMs : failureRetryMs(this.#failures, s.refreshMs));
    if (this.#ttlMs !== undefined) at = Math.min(at, startedMs + this.#ttlMs);
    // Fetch the next list a second before this one's exp, when its publisher's replacement is due; the
    // clock tolerance after exp is left for retries, not spent waiting (docs/status-list.md).
    if (this.#expClaimMs !== Infinity) at = Math.min(at, this.#expClaimMs - 1000);
    at = Math.max(at, startedMs + MIN_REFETCH_MS);
    const delay = Math.max(0, at - nowMs);
    this.#timer = setTimeout(() => void this.#fetch('scheduled'), delay);
    this.#timer.unref();
    return delay;
  }

  /** Forget the list: the next token naming it starts over with a first fetch. */
  #drop(): void {
    this.#bytes = undefined;
    this.#key = undefined;
    this.#count = 0;
    this.#etag = undefined;
    this.#expMs = Infinity;
    this.#expClaimMs = Infinity;
    this.#ttlMs = undefined;
    this.#iat = 0;
    this.#failure = undefined;
    this.#failureDetail = undefined;
    this.#failingSinceMs = undefined;
    this.#failures = 0;
    this.#attempted = false;
  }
}

/** A fetch that threw: the reason its tokens get while no good list is held. */
function failureOf(err: unknown): StatusListFailure {
  if (err instanceof FetchError) {
    if (err.code === 'too_large') return 'status_list_too_large';
    if (err.code === 'http_status' && err.httpStatus !== undefined && err.httpStatus >= 300 && err.httpStatus < 400) return 'status_list_redirect';
    if (err.code === 'timeout') return 'status_list_timeout';
  }
  return 'status_list_unavailable';
}
