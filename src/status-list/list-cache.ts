/**
 * The status lists of one issuer (SPEC §10): which URIs its tokens may name (`allowed_uris`), and one
 * StatusListEntry per URI, created on first use. Each process (each cluster worker) keeps its own
 * lists: a worker fetches a list the first time one of its requests needs it.
 *
 * A URI is accepted only in canonical form (uri.ts: no spelling, `..`, `%2e%2e`, `%2F` or an upper-case
 * host among them, can reach around a prefix) and under a configured prefix at a boundary: a prefix
 * ending in `/` covers everything below it; any other prefix covers itself and what follows it after
 * `/` or `?`.
 */
import { systemClock, type Clock } from '../core/clock.ts';
import type { StatusListHandle, StatusListLookup } from '../core/status-list.ts';
import type { IssuerKeys } from '../keys/issuer-keys.ts';
import { boundedGet } from '../net/bounded-get.ts';
import { StatusListEntry, type ListGet, type StatusListFetchInfo, type StatusListSettings } from './list-entry.ts';
import { isCanonicalListUri } from './uri.ts';

export const STATUS_LIST_MEDIA_TYPE = 'application/statuslist+jwt';

export interface StatusListsOptions {
  readonly clock?: Clock;
  /** How lists are fetched; default a bounded GET (timeout, max_bytes, ETag, no redirects). */
  readonly get?: ListGet;
  readonly onFetch?: (info: StatusListFetchInfo) => void;
}

export interface StatusListsConfig extends StatusListSettings {
  /** Prefixes, canonical (`new URL(p).href`). */
  readonly allowedUris: readonly string[];
  readonly required: boolean;
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

  constructor(config: StatusListsConfig, keys: IssuerKeys, options: StatusListsOptions = {}) {
    this.issuer = config.issuer;
    this.required = config.required;
    this.#config = config;
    this.#keys = keys;
    this.#clock = options.clock ?? systemClock;
    this.#onFetch = options.onFetch;
    this.#get =
      options.get ??
      ((uri, etag) => boundedGet(uri, { timeoutMs: config.timeoutMs, maxBytes: config.maxBytes, etag, accept: STATUS_LIST_MEDIA_TYPE }));
  }

  handle(uri: string): StatusListHandle | 'status_uri_not_allowed' {
    const known = this.#entries.get(uri);
    if (known !== undefined) return known;
    if (!uriAllowed(uri, this.#config.allowedUris)) return 'status_uri_not_allowed';
    const entry = new StatusListEntry(uri, { settings: this.#config, keys: this.#keys, clock: this.#clock, get: this.#get, onFetch: this.#onFetch });
    this.#entries.set(uri, entry);
    return entry;
  }

  /** Every list this process has been asked for. */
  entries(): IterableIterator<StatusListEntry> {
    return this.#entries.values();
  }

  /** One line per list whose tokens are refused for want of a usable list (shown by /readyz). */
  problems(nowMs: number): string[] {
    const out: string[] = [];
    for (const e of this.#entries.values()) {
      const p = e.problem(nowMs);
      if (p !== undefined) out.push(`status list ${e.uri} of issuer ${this.issuer} ${p}`);
    }
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
  });
}
