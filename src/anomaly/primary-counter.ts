/**
 * Refusal counts for a cluster (`workers` > 1), kept by the primary. Connections are spread over
 * the workers, so with a count per worker a token probing through all of them could make up to
 * workers × (deny_threshold − 1) refusals unrevoked. Each worker instead asks the primary to count
 * (one IPC round trip, on refusals only: an allow never gets here) and revokes when the primary
 * says this refusal crossed the threshold, which it says once per crossing for the whole host.
 *
 * Counting never changes an answer: a primary that does not answer in time leaves that refusal
 * uncounted (logged by the watch), like any other counting failure.
 */
import { PendingAnswers, type ToPrimary } from '../cluster/pending-answers.ts';
import type { Counted, RefusalCounter, RefusalCounting } from './refusal-counter.ts';

/** Worker → primary: count one refusal of `key`. */
export interface AnomalyCountRequest {
  readonly type: 'jitgate:anomaly-count';
  readonly id: number;
  readonly key: string;
  readonly nowMs: number;
}

/** Worker → primary: the revocation for `key` failed; the next refusal over the threshold tries again. */
export interface AnomalyRearmRequest {
  readonly type: 'jitgate:anomaly-rearm';
  readonly key: string;
}

/** Primary → worker. */
export interface AnomalyCountAnswer extends Counted {
  readonly type: 'jitgate:anomaly-counted';
  readonly id: number;
}

export type CountChannel = ToPrimary<AnomalyCountRequest | AnomalyRearmRequest>;

/** Far above an IPC round trip; only a stuck or dying primary gets near it. */
const ANSWER_TIMEOUT_MS = 5_000;

export class PrimaryRefusalCounter implements RefusalCounting {
  readonly #ipc: PendingAnswers<Counted, AnomalyCountRequest | AnomalyRearmRequest>;

  constructor(channel: CountChannel) {
    this.#ipc = new PendingAnswers(channel, ANSWER_TIMEOUT_MS, (message) => {
      const m = message as AnomalyCountAnswer | undefined;
      return m?.type === 'jitgate:anomaly-counted' ? { id: m.id, value: { inWindow: m.inWindow, crossed: m.crossed } } : undefined;
    });
  }

  add(key: string, nowMs: number): Promise<Counted> {
    return this.#ipc.ask((id) => ({ type: 'jitgate:anomaly-count', id, key, nowMs }));
  }

  rearm(key: string): void {
    this.#ipc.tell({ type: 'jitgate:anomaly-rearm', key });
  }
}

/** The primary's side: one counter for every worker. */
export function answerAnomalyCount(counter: RefusalCounter, request: AnomalyCountRequest): AnomalyCountAnswer {
  return { type: 'jitgate:anomaly-counted', id: request.id, ...counter.add(request.key, request.nowMs) };
}
