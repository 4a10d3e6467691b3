/**
 * The admin API's entries in a cluster worker (`workers` > 1). The primary alone owns the journal
 * file: it replays it, appends and fsyncs each POST, and hands entries to every worker over IPC
 * (src/cluster.ts). A worker holds them here, as the source `journal:<file>` it would have in a
 * single process:
 * - `start()` asks the primary for every live entry and waits for them, so a worker (a replacement
 *   after a crash included) never serves before it knows what the journal revoked;
 * - each later batch is added, then acknowledged, and the primary answers the POST only when every
 *   worker has acknowledged: 201 means enforced everywhere.
 */
import { systemClock, type Clock } from '../core/clock.ts';
import { StartupError } from '../errors.ts';
import type { RevocationEntry } from './entries.ts';
import { RevocationIndex } from './revocation-index.ts';
import type { RevocationSource } from './revocation-list.ts';

/** Worker → primary. */
export type FollowerRequest = { readonly type: 'jitgate:revocations-sync' } | { readonly type: 'jitgate:revoke-ack'; readonly id: number };
/** Primary → worker. */
export type FollowerUpdate =
  | { readonly type: 'jitgate:revocations-snapshot'; readonly entries: readonly RevocationEntry[] }
  | { readonly type: 'jitgate:revoke'; readonly id: number; readonly entries: readonly RevocationEntry[] };

/** The IPC channel to the primary: `process` in a worker, a stand-in in tests. */
export interface PrimaryChannel {
  send(message: FollowerRequest): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

const SNAPSHOT_TIMEOUT_MS = 10_000;
const PRUNE_EVERY_MS = 60_000;

export interface FollowerOptions {
  readonly clock?: Clock;
  /** Keep entries this long past their `exp` (the largest issuer clock tolerance; retention.ts). */
  readonly retainMs?: number;
  /** Called with the entry count after the snapshot and after each batch. */
  readonly onUpdate?: (info: { source: string; entries: number; appended: number }) => void;
}

export class JournalFollowerSource implements RevocationSource {
  readonly name: string;
  readonly lastSyncAt = undefined;
  readonly maxStaleMs = undefined;
  readonly #channel: PrimaryChannel;
  readonly #clock: Clock;
  readonly #o: FollowerOptions;
  readonly #index = new RevocationIndex();
  #timer: NodeJS.Timeout | undefined;
  #listener: ((message: unknown) => void) | undefined;

  constructor(file: string, channel: PrimaryChannel, options: FollowerOptions = {}) {
    this.name = `journal:${file}`;
    this.#channel = channel;
    this.#clock = options.clock ?? systemClock;
    this.#o = options;
  }

  get index(): RevocationIndex {
    return this.#index;
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.stop();
        reject(new StartupError(`revocation.journal: the cluster primary sent no revocation entries within ${SNAPSHOT_TIMEOUT_MS / 1000}s`));
      }, SNAPSHOT_TIMEOUT_MS);
      this.#listener = (message: unknown) => {
        const m = message as FollowerUpdate | undefined;
        if (m?.type === 'jitgate:revocations-snapshot') {
          this.#add(m.entries);
          clearTimeout(timer);
          resolve();
        } else if (m?.type === 'jitgate:revoke') {
          this.#add(m.entries);
          this.#channel.send({ type: 'jitgate:revoke-ack', id: m.id });
        }
      };
      this.#channel.on('message', this.#listener);
      this.#timer = setInterval(() => void this.#index.prune(this.#clock.nowMs() / 1000, this.#o.retainMs ?? 0), PRUNE_EVERY_MS);
      this.#timer.unref();
      this.#channel.send({ type: 'jitgate:revocations-sync' });
    });
  }

  stop(): void {
    if (this.#listener !== undefined) this.#channel.off('message', this.#listener);
    this.#listener = undefined;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #add(entries: readonly RevocationEntry[]): void {
    for (const e of entries) this.#index.add(e);
    this.#o.onUpdate?.({ source: this.name, entries: this.#index.size, appended: entries.length });
  }
}
