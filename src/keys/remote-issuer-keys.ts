/**
 * An issuer's keys from its `jwks_uri` (SPEC §6): loaded before the gate reports ready,
 * refreshed in the background, refetched at once (rate-limited) when a token names an unknown
 * `kid`, and the last good set kept while refreshes fail — up to `jwks_max_stale`, after which
 * the issuer's tokens get 503 keys_stale until a refresh succeeds again.
 *
 * Coalesce, rate-limit, and never let an old fetch win (STYLE habit 11, as jose's remote JWKS):
 * - one fetch in flight at a time; every caller that needs it awaits the same promise;
 * - an unknown kid triggers at most one refetch per `jwks_kid_cooldown`, counted only for
 *   kid-triggered fetches so a scheduled refresh never delays the pick-up of a rotated key; one
 *   that comes during the cooldown schedules the next refetch for the moment it ends;
 * - each fetch carries a sequence number and a result older than the applied set is dropped.
 *
 * Unchanged JWKs keep their KeyEntry across refreshes (importJwks `previous`), so cached
 * verifications survive a refresh while a key that left the set stops counting at once. Imported
 * keys also stay in a small per-issuer LRU by fingerprint, so a set that flaps (two issuer replicas
 * serving different sets mid-rotation) never re-imports a key it has seen recently.
 */
import { LRUCache } from 'lru-cache';
import type { IssuerConfig } from '../config/schema.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import type { IssuerKeys, KeyState } from './issuer-keys.ts';
import { fetchJwks } from './jwks-fetch.ts';
import { importJwks, KeySet, type KeyEntry } from './key-set.ts';

/**
 * After a failed fetch, retry sooner than the success interval, but at most this late; each retry
 * waits a random 50–100 % of that, so a fleet that lost its issuer at one moment (an outage, a
 * deploy that started every gate at once) does not come back to it in step.
 */
export const FAILURE_RETRY_MAX_MS = 10_000;

/** Imported keys remembered per issuer beyond the current set (bounded: an issuer cannot grow it). */
const IMPORTED_KEYS_KEPT = 32;

export type RefreshCause = 'start' | 'scheduled' | 'unknown_kid';

/** What one fetch attempt did; reported for metrics and logs. */
export interface JwksRefreshInfo {
  readonly issuer: string;
  readonly cause: RefreshCause;
  readonly result: 'ok' | 'not_modified' | 'error' | 'superseded';
  readonly durationMs: number;
  /** Keys in the set in use after this attempt. */
  readonly keys: number;
  /** Keys that entered / left the set with this attempt. */
  readonly added: number;
  readonly removed: number;
  /** Age of the set in use (ms since the last successful fetch), undefined before the first. */
  readonly ageMs: number | undefined;
  /** When the next scheduled refresh runs. */
  readonly nextInMs: number;
  readonly error?: Error;
  /** JWKs the issuer published that were not usable, with why. */
  readonly skipped?: readonly string[];
}

export interface RemoteKeysOptions {
  readonly clock?: Clock;
  /** [0, 1), for the retry jitter; Math.random unless a test pins it. */
  readonly random?: () => number;
  readonly onRefresh?: (info: JwksRefreshInfo) => void;
}

export class RemoteIssuerKeys implements IssuerKeys {
  readonly issuer: string;
  readonly #config: IssuerConfig;
  readonly #url: string;
  readonly #clock: Clock;
  readonly #onRefresh: ((info: JwksRefreshInfo) => void) | undefined;
  readonly #random: () => number;
  #set: KeySet | undefined;
  readonly #imported = new LRUCache<string, KeyEntry>({ max: IMPORTED_KEYS_KEPT });
  #etag: string | undefined;
  #lastSuccessAt: number | undefined;
  #lastKidRefetchAt = Number.NEGATIVE_INFINITY;
  #pending: Promise<void> | undefined;
  /** Sequence of the last fetch started, and of the one whose result is in use. */
  #seq = 0;
  #appliedSeq = 0;
  #timer: NodeJS.Timeout | undefined;
  /** The unknown-kid refetch waiting for the cooldown to end. */
  #deferred: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Fetch attempts started (for tests and diagnostics). */
  fetches = 0;

  constructor(config: IssuerConfig, options: RemoteKeysOptions = {}) {
    if (config.jwks_uri === undefined) throw new TypeError(`issuer ${config.issuer}: RemoteIssuerKeys needs jwks_uri`);
    this.issuer = config.issuer;
    this.#config = config;
    this.#url = config.jwks_uri;
    this.#clock = options.clock ?? systemClock;
    this.#onRefresh = options.onRefresh;
    this.#random = options.random ?? Math.random;
  }

  /** Makes the first fetch and resolves when it settled; a failure leaves the state 'loading' (not ready) and retries. */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#refresh('start');
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#deferred !== undefined) clearTimeout(this.#deferred);
    this.#deferred = undefined;
  }

  state(nowMs: number): KeyState {
    if (this.#set === undefined || this.#lastSuccessAt === undefined) return 'loading';
    return nowMs - this.#lastSuccessAt > this.#config.jwks_max_stale ? 'stale' : 'ready';
  }

  /** Synchronous on a hit; a Promise only when an unknown kid may be worth one refetch. */
  resolve(kid: string | undefined, alg: string): KeyEntry | undefined | Promise<KeyEntry | undefined> {
    const set = this.#set;
    if (set === undefined) return undefined;
    const entry = set.entryFor(kid, alg);
    // No kid, or a known kid with another alg: a refetch would not change the answer.
    if (entry !== undefined || kid === undefined || set.hasKid(kid)) return entry;
    return this.#resolveUnknown(kid, alg);
  }

  has(entry: KeyEntry): boolean {
    return this.#set?.has(entry) ?? false;
  }

  get size(): number {
    return this.#set?.size ?? 0;
  }

  /** ms since the epoch (on the injected clock) of the last successful fetch. */
  get lastSuccessAt(): number | undefined {
    return this.#lastSuccessAt;
  }

  async #resolveUnknown(kid: string, alg: string): Promise<KeyEntry | undefined> {
    // A fetch already in flight may bring the key: wait for it rather than start another.
    if (this.#pending !== undefined) {
      await this.#pending;
      const entry = this.#set?.entryFor(kid, alg);
      if (entry !== undefined) return entry;
      // Someone else started the kid refetch meanwhile: its answer is ours too.
      if (this.#pending !== undefined) {
        await this.#pending;
        return this.#set?.entryFor(kid, alg);
      }
    }
    const now = this.#clock.nowMs();
    const wait = this.#config.jwks_kid_cooldown - (now - this.#lastKidRefetchAt);
    if (wait > 0) {
      this.#deferKidRefetch(wait);
      return undefined;
    }
    this.#lastKidRefetchAt = now;
    await this.#refresh('unknown_kid');
    return this.#set?.entryFor(kid, alg);
  }

  /**
   * The cooldown was spent (perhaps by an attacker's made-up kid) when this unknown kid came: the
   * next allowed refetch runs as soon as the cooldown ends, so a key the issuer published meanwhile
   * counts after at most `jwks_kid_cooldown`, not at the next scheduled refresh. One at a time, so
   * probes still cost the issuer one fetch per cooldown.
   */
  #deferKidRefetch(ms: number): void {
    if (this.#deferred !== undefined || this.#stopped) return;
    this.#deferred = setTimeout(() => {
      this.#deferred = undefined;
      this.#lastKidRefetchAt = this.#clock.nowMs();
      void this.#refresh('unknown_kid');
    }, ms);
    this.#deferred.unref();
  }

  /** Starts a fetch unless one is in flight; never rejects (failures are reported, the old set stays). */
  #refresh(cause: RefreshCause): Promise<void> {
    if (this.#pending !== undefined) return this.#pending;
    if (this.#stopped) return Promise.resolve();
    const p: Promise<void> = this.#fetchOnce(cause).finally(() => {
      if (this.#pending === p) this.#pending = undefined;
    });
    this.#pending = p;
    return p;
  }

  async #fetchOnce(cause: RefreshCause): Promise<void> {
    const seq = ++this.#seq;
    this.fetches++;
    const started = performance.now();
    const previous = this.#set;
    let result: JwksRefreshInfo['result'] = 'error';
    let error: Error | undefined;
    let skipped: readonly string[] | undefined;
    let maxAgeMs: number | undefined;
    let added = 0;
    let removed = 0;
    try {
      const res = await fetchJwks(this.#url, {
        timeoutMs: this.#config.jwks_timeout,
        maxBytes: this.#config.jwks_max_bytes,
        etag: previous === undefined ? undefined : this.#etag,
      });
      maxAgeMs = res.maxAgeMs;
      if (res.status === 'not_modified') {
        if (seq < this.#appliedSeq) result = 'superseded';
        else {
          this.#lastSuccessAt = this.#clock.nowMs();
          result = 'not_modified';
        }
      } else {
        const known = new KeySet([...(previous?.entries() ?? []), ...this.#imported.values()]);
        const imported = await importJwks(res.doc, this.#config.algorithms, known);
        skipped = imported.skipped;
        // Keys none of which is usable are refused like a malformed document: a broken deploy at the
        // issuer must not wipe the keys we verify with. An empty `keys` array is the issuer saying it
        // withdrew them all: applied, so they stop counting at once (SPEC §6; a review found them kept
        // until jwks_max_stale, an hour by default).
        const withdrawn = (res.doc as { keys: unknown[] }).keys.length === 0;
        if (imported.set.size === 0 && !withdrawn) throw new Error(`JWKS has no usable key${skipped.length ? `: ${skipped.join('; ')}` : ''}`);
        if (seq < this.#appliedSeq) result = 'superseded';
        else {
          for (const e of imported.set.entries()) if (!previous?.has(e)) added++;
          if (previous) for (const e of previous.entries()) if (!imported.set.has(e)) removed++;
          this.#set = imported.set;
          for (const e of imported.set.entries()) this.#imported.set(e.fingerprint, e);
          this.#etag = res.etag;
          this.#appliedSeq = seq;
          this.#lastSuccessAt = this.#clock.nowMs();
          result = 'ok';
        }
      }
    } catch (err) {
      error = err as Error;
    }
    const nextInMs = this.#schedule(result !== 'error', maxAgeMs);
    const now = this.#clock.nowMs();
    this.#onRefresh?.({
      issuer: this.issuer,
      cause,
      result,
      durationMs: performance.now() - started,
      keys: this.size,
      added,
      removed,
      ageMs: this.#lastSuccessAt === undefined ? undefined : now - this.#lastSuccessAt,
      nextInMs,
      ...(error ? { error } : {}),
      ...(skipped?.length ? { skipped } : {}),
    });
  }

  /** Schedules the next background refresh; returns its delay. */
  #schedule(succeeded: boolean, maxAgeMs: number | undefined): number {
    const refresh = this.#config.jwks_refresh;
    const min = Math.min(this.#config.jwks_refresh_min, refresh);
    const delay = succeeded
      ? Math.min(refresh, Math.max(min, maxAgeMs ?? refresh))
      : Math.ceil(Math.min(refresh, FAILURE_RETRY_MAX_MS) * (0.5 + 0.5 * this.#random()));
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#stopped) return delay;
    this.#timer = setTimeout(() => void this.#refresh('scheduled'), delay);
    this.#timer.unref();
    return delay;
  }
}
