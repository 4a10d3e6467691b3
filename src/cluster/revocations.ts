/**
 * The primary's revocation journal and its fan-out: every POSTed batch is journalled, then handed
 * to each worker that follows the journal, and answered only once all of them confirmed.
 */
import type { Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { NotEnforcedError, revocationStatus, type RevocationStore } from '../admin/revocations-api.ts';
import type { RedisRevocationWriter } from '../fleet/fleet.ts';
import { logJournalReplay } from '../build-gate.ts';
import type { RevocationEntry } from '../revocation/entries.ts';
import { JournalRevocationSource } from '../revocation/journal-source.ts';
import { RevocationList } from '../revocation/revocation-list.ts';
import type { ToWorker } from './messages.ts';

/** How long a POST /revocations waits for every worker to confirm the entries. */
const REVOKE_ACK_TIMEOUT_MS = 5000;

/** The replayed journal the primary serves to its workers; its replay is logged like a single gate's. */
export async function primaryJournal(file: string, log: Logger, retainMs: number): Promise<JournalRevocationSource> {
  const journal = new JournalRevocationSource(file, { retainMs, onReplay: (i) => logJournalReplay(log, i) });
  await journal.start();
  return journal;
}

/** The journal's entries on every worker: who follows them, and which batches are still unconfirmed. */
export class RevocationFanOut {
  readonly #journal: JournalRevocationSource | undefined;
  /** Workers holding the journal's entries (they asked for them), and the batches they have yet to confirm. */
  readonly #followers = new Set<Worker>();
  readonly #acks = new Map<number, (worker: Worker) => void>();
  #revokeId = 0;

  constructor(journal: JournalRevocationSource | undefined) {
    this.#journal = journal;
  }

  follow(worker: Worker): void {
    // In the same tick as the snapshot: every later batch goes to this worker too.
    this.#followers.add(worker);
    worker.send({ type: 'jitgate:revocations-snapshot', entries: this.#journal === undefined ? [] : [...this.#journal.index.entries()] } satisfies ToWorker);
  }

  confirmed(worker: Worker, id: number): void {
    this.#acks.get(id)?.(worker);
  }

  gone(worker: Worker): void {
    this.#followers.delete(worker);
    // A worker that exits owes no confirmation: its replacement syncs from the journal.
    for (const settle of this.#acks.values()) settle(worker);
  }

  /** Resolves once every follower confirmed `entries` (one that exits meanwhile counts as done). */
  broadcast(entries: readonly RevocationEntry[]): Promise<void> {
    const id = ++this.#revokeId;
    const waiting = new Set([...this.#followers].filter((w) => !w.isDead() && w.isConnected()));
    if (waiting.size === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        this.#acks.delete(id);
        if (err) reject(err);
        else resolve();
      };
      const settle = (worker: Worker): void => {
        if (!waiting.delete(worker)) return;
        if (waiting.size === 0) finish();
      };
      const timer = setTimeout(() => finish(new NotEnforcedError(`${waiting.size} worker(s) did not confirm within ${REVOKE_ACK_TIMEOUT_MS / 1000}s`)), REVOKE_ACK_TIMEOUT_MS);
      this.#acks.set(id, settle);
      for (const w of [...waiting]) {
        try {
          w.send({ type: 'jitgate:revoke', id, entries } satisfies ToWorker);
        } catch {
          settle(w); // the channel closed under us: the worker is going away
        }
      }
    });
  }
}

/**
 * The store behind POST /revocations (and a worker's anomaly revocation): 201 only once every worker
 * holds the entries. `redis`: the primary's writer, for the status only (chooseRevocationStore writes).
 */
export function journalStore(journal: JournalRevocationSource | undefined, fanOut: RevocationFanOut, count: number, redis?: RedisRevocationWriter): RevocationStore {
  return {
    journalFile: journal?.file,
    async append(entries) {
      await journal!.append(entries);
      await fanOut.broadcast(entries);
      return journal!.index.size;
    },
    async status() {
      // revocation.file and .url are each worker's own: their counts and freshness are in /metrics and /readyz.
      const own = revocationStatus(new RevocationList(journal === undefined ? [] : [journal]), journal, Date.now());
      if (redis === undefined) return { ...own, workers: count };
      // The workers follow Redis, the primary does not: without this it reported 0 entries while they enforced them.
      const live = await redisLiveStatus(redis);
      return { ...own, entries: own.entries + (live.entries ?? 0), stale: own.stale || live.stale, sources: [...own.sources, live], workers: count };
    },
  };
}

/** Redis's live set as one entry of `sources`, read now; Redis away shows as stale with the error. */
async function redisLiveStatus(redis: RedisRevocationWriter): Promise<{ name: string; kind: 'redis'; entries: number | null; stale: boolean; error?: string }> {
  const name = `redis:${redis.description}`;
  try {
    return { name, kind: 'redis', entries: await redis.count(), stale: false };
  } catch (err) {
    return { name, kind: 'redis', entries: null, stale: true, error: (err as Error).message };
  }
}
