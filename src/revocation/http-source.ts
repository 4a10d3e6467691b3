/**
 * Revocation entries from an HTTP(S) URL (SPEC §5, `revocation.url`), polled every
 * `poll_interval` with If-None-Match. A 304 keeps the index and counts as a successful sync; a 200
 * is parsed whole and swapped in atomically. Any failure keeps the last index and leaves
 * `lastSyncAt` alone, so after `max_stale` without a sync every decision fails closed (503
 * revocation_stale) until the source answers again.
 *
 * Polls are timed from the start of the previous one, so a change at the source is picked up
 * within one poll interval plus one download. One sync at a time; a result older than the index
 * in use is dropped (sequence numbers, as in remote-issuer-keys.ts).
 */
import { systemClock, type Clock } from '../core/clock.ts';
import { boundedGet, FetchError } from '../net/bounded-get.ts';
import type { LineError } from './entries.ts';
import { judgeReload, type RefusalReason } from './reload-guard.ts';
import { RevocationIndex } from './revocation-index.ts';
import type { RevocationSource } from './revocation-list.ts';
import type { ReloadReport } from '../reload-report.ts';

/** Prune expired entries from an unchanged (304) index at most this often. */
const PRUNE_EVERY_MS = 60_000;

export interface RevocationSyncInfo {
  readonly source: string;
  readonly result: 'ok' | 'not_modified' | 'error' | 'superseded';
  readonly durationMs: number;
  /** Entries in the index in use after this sync. */
  readonly entries: number;
  /** Bytes downloaded (200 only). */
  readonly bytes?: number;
  /** ms since the last successful sync, after this one; undefined when never synced. */
  readonly ageMs: number | undefined;
  /** Lines of a 200 body that were skipped, with their numbers. */
  readonly lineErrors?: readonly LineError[];
  readonly error?: Error;
  /** Set when a 200 body was refused (reload-guard.ts); the last list is kept. */
  readonly refused?: RefusalReason;
}

export interface HttpSourceOptions {
  readonly url: string;
  readonly pollMs: number;
  readonly maxStaleMs: number;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly clock?: Clock;
  /** Keep entries this long past their `exp` (the largest issuer clock tolerance; retention.ts). */
  readonly retainMs?: number;
  readonly onSync?: (info: RevocationSyncInfo) => void;
}

export class HttpRevocationSource implements RevocationSource {
  readonly name: string;
  readonly maxStaleMs: number;
  readonly #o: HttpSourceOptions;
  readonly #clock: Clock;
  #index = new RevocationIndex();
  #lastSyncAt: number | undefined;
  #lastPruneAt = 0;
  #etag: string | undefined;
  #pending: Promise<void> | undefined;
  #seq = 0;
  #appliedSeq = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #problem: string | undefined;

  constructor(options: HttpSourceOptions) {
    this.name = `url:${options.url}`;
    this.maxStaleMs = options.maxStaleMs;
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
  }

  get index(): RevocationIndex {
    return this.#index;
  }

  get lastSyncAt(): number | undefined {
    return this.#lastSyncAt;
  }

  /** Why the last 200 body was refused (for /readyz), until a body is accepted again. */
  get problem(): string | undefined {
    return this.#problem;
  }

  /** First sync, then polling. Never throws: an unreachable source leaves the gate not ready (503) until it syncs. */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.sync();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * A sync that starts now (after the one in flight, if any), for SIGHUP: joining the one in flight
   * would report data asked for before the signal. Never rejects.
   */
  async syncAfresh(): Promise<void> {
    await this.#pending;
    await this.sync();
  }

  /** SIGHUP: a fresh sync; one that did not land (its failure is the source's own event) fails the reload. */
  async reloadOnSignal(): Promise<ReloadReport> {
    const before = this.#lastSyncAt;
    await this.syncAfresh();
    if (this.#lastSyncAt === before) return { ok: false, msg: 'revocation feed not synced on reload; keeping the last list', fields: { source: this.name } };
    return { ok: true };
  }

  /** Syncs now, or joins the sync in flight. Never rejects. */
  sync(): Promise<void> {
    if (this.#pending !== undefined) return this.#pending;
    if (this.#stopped) return Promise.resolve();
    const p: Promise<void> = this.#syncOnce().finally(() => {
      if (this.#pending === p) this.#pending = undefined;
    });
    this.#pending = p;
    return p;
  }

  async #syncOnce(): Promise<void> {
    const seq = ++this.#seq;
    const started = performance.now();
    // The data is at least as fresh as the moment we asked: count staleness from the request.
    const askedAt = this.#clock.nowMs();
    let result: RevocationSyncInfo['result'] = 'error';
    let error: Error | undefined;
    let lineErrors: readonly LineError[] | undefined;
    let bytes: number | undefined;
    let refused: RefusalReason | undefined;
    try {
      const res = await boundedGet(this.#o.url, {
        timeoutMs: this.#o.timeoutMs,
        maxBytes: this.#o.maxBytes,
        etag: this.#lastSyncAt === undefined ? undefined : this.#etag,
        accept: 'application/jsonl, application/x-ndjson, text/plain;q=0.5',
      });
      if (res.status === 'not_modified') {
        if (seq < this.#appliedSeq) result = 'superseded';
        else {
          this.#lastSyncAt = askedAt;
          this.#maybePrune(askedAt);
          result = 'not_modified';
        }
      } else {
        bytes = res.body.length;
        // Bad lines are skipped and reported, but a body that is not a feed (an HTML error page
        // with 200, no bytes where entries existed, a torn last line) would un-revoke: refused.
        const verdict = await judgeReload(res.body.toString('utf8'), this.#index.size > 0);
        if ('refused' in verdict) {
          refused = verdict.refused;
          this.#problem = `revocation source ${this.name}: last sync refused (${refused}): ${verdict.detail}; keeping the last list of ${this.#index.size} entries`;
          throw new FetchError('malformed', verdict.detail);
        }
        const { entries, errors } = verdict;
        lineErrors = errors;
        const index = await RevocationIndex.of(entries);
        await index.prune(askedAt / 1000, this.#o.retainMs ?? 0);
        if (seq < this.#appliedSeq) result = 'superseded';
        else {
          this.#index = index;
          this.#etag = res.etag;
          this.#appliedSeq = seq;
          this.#lastSyncAt = askedAt;
          this.#lastPruneAt = askedAt;
          this.#problem = undefined;
          result = 'ok';
        }
      }
    } catch (err) {
      error = err as Error;
    }
    const durationMs = performance.now() - started;
    this.#schedule(Math.max(0, this.#o.pollMs - durationMs));
    this.#o.onSync?.({
      source: this.name,
      result,
      durationMs,
      entries: this.#index.size,
      ageMs: this.#lastSyncAt === undefined ? undefined : this.#clock.nowMs() - this.#lastSyncAt,
      ...(bytes !== undefined ? { bytes } : {}),
      ...(lineErrors?.length ? { lineErrors } : {}),
      ...(error ? { error } : {}),
      ...(refused ? { refused } : {}),
    });
  }

  #maybePrune(nowMs: number): void {
    if (nowMs - this.#lastPruneAt < PRUNE_EVERY_MS) return;
    this.#lastPruneAt = nowMs;
    void this.#index.prune(nowMs / 1000, this.#o.retainMs ?? 0);
  }

  #schedule(delayMs: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.sync(), delayMs);
    this.#timer.unref();
  }
}
