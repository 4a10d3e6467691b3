/**
 * The status lists of one issuer (SPEC §10): which URIs its tokens may name (`allowed_uris`), and one
 * StatusListEntry per URI, created on first use. Each process (each cluster worker) keeps its own
 * lists: a worker fetches a list the first time one of its requests needs it.
 *
 * A URI is accepted only in canonical form (uri.ts: no spelling, `..`, `%2e%2e`, `%2F` or an upper-case
 * host among them, can reach around a prefix) and under a configured prefix at a boundary: a prefix
 * ending in `/` covers everything below it; any other prefix covers itself and what follows it after
 * `/` or `?`.
 *
 * Bounds (docs/status-list.md "Bounds"; a reviewer's tokens naming 11,726 lists once took a gate to 27k
 * sockets, 1.3 GB and seconds of event-loop lag):
 * - at most `max_lists` entries per issuer. A new URI takes the place of the least recently used list
 *   only if no token asked that list for a status within the last `refresh`; else the new URI's tokens
 *   get 503 `status_list_capacity` until one falls idle. A list in use is never evicted for a new one:
 *   evicting it would make its next request wait for a refetch, and URIs evicting each other would
 *   turn into a fetch per request. With the idle rule each slot is reused at most once per `refresh`,
 *   so new lists cost at most `max_lists` first fetches per `refresh`, like the refreshes themselves.
 * - entries dropped for disuse leave the map;
 * - at most {@link STATUS_LIST_FETCHES_PER_ORIGIN} fetches per origin in flight (the rest queue, each
 *   within its own `timeout`), and a failing list backs off (list-entry.ts);
 * - /readyz lists at most {@link MAX_PROBLEMS_LISTED} unusable lists per issuer.
 */
import { systemClock, type Clock } from '../core/clock.ts';
import type { StatusListFailure, StatusListHandle, StatusListLookup } from '../core/status-list.ts';
import type { IssuerKeys } from '../keys/issuer-keys.ts';
import { boundedGet, FetchError } from '../net/bounded-get.ts';
import { StatusListEntry, type ListGet, type StatusListFetchInfo, type StatusListSettings } from './list-entry.ts';
import { OriginSlots } from './origin-slots.ts';
import { isCanonicalListUri } from './uri.ts';

export const STATUS_LIST_MEDIA_TYPE = 'application/statuslist+jwt';

/**
 * Status-list fetches in flight per origin, all issuers of the process together. A healthy publisher
 * answers in milliseconds, so 8 carry hundreds of fetches a second, far above the max_lists / refresh a
 * gate needs; a publisher that hangs holds 8 of them (and their sockets), not one per list.
 */
export const STATUS_LIST_FETCHES_PER_ORIGIN = 8;

const originSlots = new OriginSlots(STATUS_LIST_FETCHES_PER_ORIGIN);

/**
 * The default GET of a list: bounded-get.ts, once a slot of the list's origin is free. `timeout` counts
 * from the call, the wait for a slot included: a fetch is over within `timeout` as before, and a queue
 * behind a hanging publisher drains within one `timeout` instead of each fetch waiting its turn, then its own.
 */
function statusListGet(config: StatusListsConfig): ListGet {
  return (uri, etag) => {
    const deadline = performance.now() + config.timeoutMs;
    return originSlots.run(new URL(uri).origin, () => {
      const left = Math.floor(deadline - performance.now());
      if (left <= 0) {
        return Promise.reject(new FetchError('timeout', `no fetch slot for the origin within ${config.timeoutMs}ms (at most ${STATUS_LIST_FETCHES_PER_ORIGIN} in flight per origin)`));
      }
      return boundedGet(uri, { timeoutMs: left, maxBytes: config.maxBytes, etag, accept: STATUS_LIST_MEDIA_TYPE });
    });
  };
}

/** Unusable lists named one by one on /readyz per issuer; the rest are counted in one line. */
export const MAX_PROBLEMS_LISTED = 10;

export interface StatusListsOptions {
  readonly clock?: Clock;
  /** How lists are fetched; default a bounded GET (timeout, max_bytes, ETag, no redirects), per-origin limited. */
  readonly get?: ListGet;
  readonly onFetch?: (info: StatusListFetchInfo) => void;
}

export interface StatusListsConfig extends StatusListSettings {
  /** Prefixes, canonical (`new URL(p).href`). */
  readonly allowedUris: readonly string[];
  readonly required: boolean;
  /** Lists held at most (`max_lists`). */
  readonly maxLists: number;
}

/** Whether `uri` is canonical (uri.ts) and lies under one of `prefixes` at a boundary. */
export function uriAllowed(uri: string, prefixes: readonly string[]): boolean {
  if (!isCanonicalListUri(uri)) return false;
  for (const p of prefixes) {
    if (uri === p) return true;
    if (!uri.startsWith(p)) continue;
    const next = uri.charCodeAt(p.length);
    if (p.endsWith('/') || next === 0x2f || next === 0x3f) return true;
  }
  return false;
}

export class StatusLists implements StatusListLookup {
  readonly issuer: string;
  readonly required: boolean;
  readonly #config: StatusListsConfig;
  readonly #keys: IssuerKeys;
  readonly #clock: Clock;
  readonly #get: ListGet;
  readonly #onFetch: StatusListsOptions['onFetch'];
  readonly #entries = new Map<string, StatusListEntry>();
  /**
   * While the map is full: no entry can have been idle for `refresh` before this time (uses only move
   * forward), so a flood of new URIs is refused without scanning the map each time.
   */
  #fullUntilMs = -Infinity;

  constructor(config: StatusListsConfig, keys: IssuerKeys, options: StatusListsOptions = {}) {
    this.issuer = config.issuer;
    this.required = config.required;
    this.#config = config;
    this.#keys = keys;
    this.#clock = options.clock ?? systemClock;
    this.#onFetch = options.onFetch;
    this.#get = options.get ?? statusListGet(config);
  }

  handle(uri: string): StatusListHandle | 'status_uri_not_allowed' {
    const known = this.#entries.get(uri);
    if (known !== undefined) return known;
    if (!uriAllowed(uri, this.#config.allowedUris)) return 'status_uri_not_allowed';
    const entry = this.#admit(uri);
    // No room: the token is still verified and cached, with a handle that asks again on each request —
    // 503 status_list_capacity now, its list once an idle one makes room (the refusal is not cached).
    return entry === 'status_list_capacity' ? new Unheld(uri, this.#successor) : entry;
  }

  /** Who answers for `uri` when the handle a token holds has no entry of its own (Unheld, a retired entry). */
  readonly #successor = (uri: string): StatusListEntry | 'status_list_capacity' => this.#entries.get(uri) ?? this.#admit(uri);

  /** A new entry for `uri`, making room by evicting the least recently used list if it is idle (see the file comment). */
  #admit(uri: string): StatusListEntry | 'status_list_capacity' {
    if (this.#entries.size >= this.#config.maxLists) {
      const now = this.#clock.nowMs();
      if (now < this.#fullUntilMs) return 'status_list_capacity';
      // O(max_lists), and only when full; #fullUntilMs spares the scan until it can find something.
      let lru: StatusListEntry | undefined;
      for (const e of this.#entries.values()) if (lru === undefined || e.usedAtMs < lru.usedAtMs) lru = e;
      if (lru === undefined) return 'status_list_capacity';
      if (now - lru.usedAtMs < this.#config.refreshMs) {
        this.#fullUntilMs = lru.usedAtMs + this.#config.refreshMs;
        return 'status_list_capacity';
      }
      this.#entries.delete(lru.uri);
      lru.retire();
    }
    const entry = new StatusListEntry(uri, {
      settings: this.#config,
      keys: this.#keys,
      clock: this.#clock,
      get: this.#get,
      onFetch: this.#onFetch,
      successor: this.#successor,
      onRetire: this.#forget,
    });
    this.#entries.set(uri, entry);
    return entry;
  }

  /** An entry dropped itself for disuse: it leaves the map (if a newer entry has not taken its URI). */
  readonly #forget = (entry: StatusListEntry): void => {
    if (this.#entries.get(entry.uri) === entry) this.#entries.delete(entry.uri);
  };

  /** Lists currently held or being fetched (at most `max_lists`). */
  get size(): number {
    return this.#entries.size;
  }

  /** Every list in the map: at most `max_lists`, the most recently added last. */
  entries(): IterableIterator<StatusListEntry> {
    return this.#entries.values();
  }

  /**
   * One line per list whose tokens are refused for want of a usable list (shown by /readyz): the
   * {@link MAX_PROBLEMS_LISTED} most recently used (the ones refusing traffic now; on a tie the newest
   * entry), then a count of the rest. Unbounded, a thousand failing lists once made /readyz 160 KB
   * (11,726 lists: 1.9 MB, seconds to build); the walk is bounded by max_lists.
   */
  problems(nowMs: number): string[] {
    const failing: { readonly entry: StatusListEntry; readonly problem: string }[] = [];
    for (const entry of this.#entries.values()) {
      const problem = entry.problem(nowMs);
      if (problem !== undefined) failing.push({ entry, problem });
    }
    // Map order is oldest entry first: reversed, then a stable sort by last use.
    failing.reverse().sort((x, y) => y.entry.usedAtMs - x.entry.usedAtMs);
    const out = failing.slice(0, MAX_PROBLEMS_LISTED).map((f) => `status list ${f.entry.uri} of issuer ${this.issuer} ${f.problem}`);
    const more = failing.length - out.length;
    if (more > 0) out.push(`and ${more} more status lists of issuer ${this.issuer} are unusable (${MAX_PROBLEMS_LISTED} most recently used shown)`);
    return out;
  }

  stop(): void {
    for (const e of this.#entries.values()) e.stop();
  }
}

/** The runtime settings of an issuer's `status_list` block (durations already in ms). */
export function statusListsConfig(issuer: {
  readonly issuer: string;
  readonly algorithms: readonly string[];
  readonly clock_tolerance: number;
  readonly status_list: {
    readonly allowed_uris: readonly string[];
    readonly required: boolean;
    readonly refresh: number;
    readonly max_stale: number;
    readonly timeout: number;
    readonly max_bytes: number;
    readonly max_list_bytes: number;
    readonly max_lists: number;
  };
}): StatusListsConfig {
  const s = issuer.status_list;
  return Object.freeze({
    issuer: issuer.issuer,
    algorithms: new Set(issuer.algorithms),
    toleranceSec: issuer.clock_tolerance / 1000,
    refreshMs: s.refresh,
    maxStaleMs: s.max_stale,
    timeoutMs: s.timeout,
    maxBytes: s.max_bytes,
    maxListBytes: s.max_list_bytes,
    allowedUris: Object.freeze(s.allowed_uris.map((p) => new URL(p).href)),
    required: s.required,
    maxLists: s.max_lists,
  });
}

/**
 * The handle of a token whose URI found no room among its issuer's lists: each request asks again,
 * so the token gets 503 `status_list_capacity` while the issuer's lists are all in use and its own
 * list as soon as one falls idle.
 */
class Unheld implements StatusListHandle {
  readonly uri: string;
  readonly #successor: (uri: string) => StatusListEntry | 'status_list_capacity';

  constructor(uri: string, successor: (uri: string) => StatusListEntry | 'status_list_capacity') {
    this.uri = uri;
    this.#successor = successor;
  }

  status(idx: number, nowMs: number): number | 'pending' | StatusListFailure {
    const entry = this.#successor(this.uri);
    return entry === 'status_list_capacity' ? entry : entry.status(idx, nowMs);
  }

  settled(): Promise<void> {
    const entry = this.#successor(this.uri);
    return entry === 'status_list_capacity' ? Promise.resolve() : entry.settled();
  }
}
