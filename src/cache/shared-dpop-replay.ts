/**
 * DPoP proof single use across cluster workers (RFC 9449 §11.1). The primary holds the one
 * DpopReplayCache; a worker records each proof's jti there over IPC and refuses the request unless
 * the primary says it was fresh. The primary is one thread, so its check-and-record cannot
 * interleave between workers. A worker also keeps the jtis it saw itself, so a replay that comes
 * back to the same worker is refused without a round trip.
 *
 * No answer within a second fails closed: the proof is refused as not recordable
 * (`dpop_replay_cache_full`), never accepted unrecorded.
 */
import { PendingAnswers, type ToPrimary } from '../cluster/pending-answers.ts';
import { DpopReplayCache, type ReplayGuard, type ReplayOutcome, type ReplayStats } from './dpop-replay.ts';

export type ReplayRequest = { readonly type: 'jitgate:dpop-add'; readonly id: number; readonly jti: string; readonly jkt?: string; readonly until: number; readonly now: number };
export type ReplayAnswer = { readonly type: 'jitgate:dpop-added'; readonly id: number; readonly outcome: ReplayOutcome };

/** The worker's IPC channel to the primary (`process` in a worker). */
export type ReplayChannel = ToPrimary<ReplayRequest>;

const ANSWER_TIMEOUT_MS = 1000;

/** No answer (a timeout, or a channel that is gone): the proof cannot be recorded, so it is refused. */
const notRecorded = (): ReplayOutcome => 'full';

export class SharedReplayGuard implements ReplayGuard {
  readonly #ipc: PendingAnswers<ReplayOutcome, ReplayRequest>;
  readonly #local: DpopReplayCache;

  constructor(channel: ReplayChannel, localEntries: number) {
    this.#local = new DpopReplayCache(localEntries);
    this.#ipc = new PendingAnswers(channel, ANSWER_TIMEOUT_MS, (message) => {
      const m = message as ReplayAnswer | undefined;
      return m?.type === 'jitgate:dpop-added' ? { id: m.id, value: m.outcome } : undefined;
    });
  }

  get stats(): ReplayStats {
    return this.#local.stats;
  }

  has(jti: string, nowMs: number, jkt?: string): boolean {
    return this.#local.has(jti, nowMs, jkt);
  }

  add(jti: string, untilMs: number, nowMs: number, jkt?: string): ReplayOutcome | Promise<ReplayOutcome> {
    // Seen by this worker already: a replay, no need to ask.
    if (this.#local.has(jti, nowMs, jkt)) return 'replay';
    return this.#ipc.ask((id) => ({ type: 'jitgate:dpop-add', id, jti, jkt, until: untilMs, now: nowMs })).then((outcome) => {
      // Remembered here only once the primary has recorded it: a proof the primary could not record
      // (full, no answer) was not used, and its client may send it again (a re-probe found it burned).
      if (outcome === 'fresh' || outcome === 'replay') this.#local.add(jti, untilMs, nowMs, jkt);
      return outcome;
    }, notRecorded);
  }
}

/** The primary's answer to one worker request. */
export function answerReplay(cache: DpopReplayCache, m: ReplayRequest): ReplayAnswer {
  return { type: 'jitgate:dpop-added', id: m.id, outcome: cache.add(m.jti, m.until, m.now, typeof m.jkt === 'string' ? m.jkt : undefined) };
}
