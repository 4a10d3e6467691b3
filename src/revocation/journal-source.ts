/**
 * The admin API's revocations as a RevocationSource: replayed from the journal at start, then
 * grown by `append`, which makes the entries durable before they count (and before the API may
 * answer 2xx). Not remote, so never stale. Entries whose `exp` passed are pruned from memory, and
 * from the file at start.
 */
import { systemClock, type Clock } from '../core/clock.ts';
import { StartupError } from '../errors.ts';
import type { LineError, RevocationEntry } from './entries.ts';
import { Journal } from './journal.ts';
import { RevocationIndex } from './revocation-index.ts';
import { isLive } from './retention.ts';
import type { RevocationSource } from './revocation-list.ts';

const PRUNE_EVERY_MS = 60_000;

export interface JournalReplayInfo {
  readonly source: string;
  readonly entries: number;
  readonly expired: number;
  readonly lineErrors: readonly LineError[];
  readonly tornTail: boolean;
  readonly compacted: boolean;
  readonly durationMs: number;
}

export interface JournalAppendInfo {
  readonly source: string;
  readonly appended: number;
  readonly entries: number;
  readonly durationMs: number;
}

export interface JournalSourceOptions {
  readonly clock?: Clock;
  /** Keep entries this long past their `exp`, in memory and through compaction (retention.ts). */
  readonly retainMs?: number;
  readonly onReplay?: (info: JournalReplayInfo) => void;
  readonly onAppend?: (info: JournalAppendInfo) => void;
}

export class JournalRevocationSource implements RevocationSource {
  readonly name: string;
  readonly lastSyncAt = undefined;
  readonly maxStaleMs = undefined;
  readonly #journal: Journal;
  readonly #clock: Clock;
  readonly #o: JournalSourceOptions;
  #index = new RevocationIndex();
  #timer: NodeJS.Timeout | undefined;
  #open = false;

  constructor(file: string, options: JournalSourceOptions = {}) {
    this.name = `journal:${file}`;
    this.#journal = new Journal(file);
    this.#clock = options.clock ?? systemClock;
    this.#o = options;
  }

  get index(): RevocationIndex {
    return this.#index;
  }

  get file(): string {
    return this.#journal.file;
  }

  /** Replays the journal. Fails startup when it cannot be read or opened: acknowledged entries would be lost. */
  async start(): Promise<void> {
    const started = performance.now();
    let replay;
    try {
      replay = await this.#journal.open();
    } catch (err) {
      throw new StartupError(`revocation.journal ${this.#journal.file}: ${(err as Error).message}`, { cause: err });
    }
    const nowSec = this.#clock.nowMs() / 1000;
    const retainMs = this.#o.retainMs ?? 0;
    const live = replay.entries.filter((e) => isLive(e.exp, nowSec, retainMs));
    const expired = replay.entries.length - live.length;
    // Rewrite only to drop expired entries, and never over lines that failed to parse: those are
    // kept on disk for whoever investigates the corruption.
    let compacted = false;
    if (expired > 0 && replay.errors.length === 0) {
      try {
        await this.#journal.compact(live);
        compacted = true;
      } catch {
        // The old journal is intact; compaction is only housekeeping.
      }
    }
    this.#index = new RevocationIndex(live);
    this.#open = true;
    this.#timer = setInterval(() => void this.#index.prune(this.#clock.nowMs() / 1000, retainMs), PRUNE_EVERY_MS);
    this.#timer.unref();
    this.#o.onReplay?.({
      source: this.name,
      entries: this.#index.size,
      expired,
      lineErrors: replay.errors,
      tornTail: replay.tornTail,
      compacted,
      durationMs: performance.now() - started,
    });
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#open = false;
    void this.#journal.close().catch(() => {});
  }

  get isOpen(): boolean {
    return this.#open;
  }

  /** Durable first (journal + fdatasync), then enforced. Rejects when the entries may not be on disk. */
  async append(entries: readonly RevocationEntry[]): Promise<void> {
    const started = performance.now();
    await this.#journal.append(entries);
    for (const e of entries) this.#index.add(e);
    this.#o.onAppend?.({ source: this.name, appended: entries.length, entries: this.#index.size, durationMs: performance.now() - started });
  }
}
