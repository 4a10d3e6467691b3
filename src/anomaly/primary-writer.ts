/**
 * Anomaly revocations from a cluster worker (`workers` > 1). A worker has no journal of its own:
 * the primary owns it (src/cluster.ts). So a worker asks the primary to append, and the primary
 * does exactly what it does for `POST /revocations` — journal, fsync, hand the entries to every
 * worker and wait for each to confirm — then answers. The worker's revocation thus reaches every
 * worker, and survives a restart, before it is reported as done.
 */
import type { Logger } from 'pino';
import { PendingAnswers, type ToPrimary } from '../cluster/pending-answers.ts';
import type { RevocationEntry } from '../revocation/entries.ts';
import type { RevocationWriter } from './anomaly-watch.ts';

/** Worker → primary. */
export interface AnomalyRevokeRequest {
  readonly type: 'jitgate:anomaly-revoke';
  readonly id: number;
  readonly entries: readonly RevocationEntry[];
}

/** Primary → worker. */
export interface AnomalyRevokeAnswer {
  readonly type: 'jitgate:anomaly-revoked';
  readonly id: number;
  /** Set when the entries could not be made durable and enforced. */
  readonly error?: string;
}

export type WorkerChannel = ToPrimary<AnomalyRevokeRequest>;

/** The journal write plus the broadcast to every worker, and a little slack for the IPC itself. */
const ANSWER_TIMEOUT_MS = 15_000;

/** The worker's RevocationWriter: each append is one request to the primary. */
export class PrimaryRevocationWriter implements RevocationWriter {
  readonly #ipc: PendingAnswers<void, AnomalyRevokeRequest>;

  constructor(channel: WorkerChannel) {
    this.#ipc = new PendingAnswers<void, AnomalyRevokeRequest>(channel, ANSWER_TIMEOUT_MS, (message) => {
      const m = message as AnomalyRevokeAnswer | undefined;
      if (m?.type !== 'jitgate:anomaly-revoked') return undefined;
      return m.error === undefined ? { id: m.id, value: undefined } : { id: m.id, error: new Error(`the cluster primary could not revoke: ${m.error}`) };
    });
  }

  append(entries: readonly RevocationEntry[]): Promise<void> {
    return this.#ipc.ask((id) => ({ type: 'jitgate:anomaly-revoke', id, entries }));
  }
}

/** The primary's side: append through its store (the one POST /revocations uses) and answer the worker. */
export function answerAnomalyRevoke(
  store: RevocationWriter,
  request: AnomalyRevokeRequest,
  reply: (answer: AnomalyRevokeAnswer) => void,
  log: Logger,
): void {
  // A config without a durable store never starts (anomaly/config-check.ts), so `store` can write.
  store.append(request.entries).then(
    () => reply({ type: 'jitgate:anomaly-revoked', id: request.id }),
    (err: unknown) => {
      log.error({ err: (err as Error).message }, 'anomaly revocation from a worker could not be written');
      reply({ type: 'jitgate:anomaly-revoked', id: request.id, error: (err as Error).message });
    },
  ).catch((err: unknown) => log.error({ err: (err as Error).message }, 'answering a worker about an anomaly revocation failed'));
}
