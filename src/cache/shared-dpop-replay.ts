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
import { DpopReplayCache, type ReplayGuard, type ReplayOutcome, type ReplayStats } from './dpop-replay.ts';

export type ReplayRequest = { readonly type: 'jitgate:dpop-add'; readonly id: number; readonly jti: string; readonly until: number; readonly now: number };
export type ReplayAnswer = { readonly type: 'jitgate:dpop-added'; readonly id: number; readonly outcome: ReplayOutcome };

/** The worker's IPC channel to the primary (`process` in a worker). */
export interface ReplayChannel {
  send(message: ReplayRequest): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
}

const ANSWER_TIMEOUT_MS = 1000;

export class SharedReplayGuard implements ReplayGuard {
  readonly #channel: ReplayChannel;
  readonly #local: DpopReplayCache;
  readonly #pending = new Map<number, (o: ReplayOutcome) => void>();
  #id = 0;

  constructor(channel: ReplayChannel, localEntries: number) {
    this.#channel = channel;
    this.#local = new DpopReplayCache(localEntries);
    channel.on('message', (message: unknown) => {
      const m = message as ReplayAnswer | undefined;
      if (m?.type === 'jitgate:dpop-added') this.#pending.get(m.id)?.(m.outcome);
    });
  }

  get stats(): ReplayStats {
    return this.#local.stats;
  }

  has(jti: string, nowMs: number): boolean {
    return this.#local.has(jti, nowMs);
  }

  add(jti: string, untilMs: number, nowMs: number): ReplayOutcome | Promise<ReplayOutcome> {
    // Seen by this worker already: a replay, no need to ask. (A local 'full' is only this mirror's.)
    if (this.#local.add(jti, untilMs, nowMs) === 'replay') return 'replay';
    const id = ++this.#id;
    return new Promise<ReplayOutcome>((resolve) => {
      const timer = setTimeout(() => settle('full'), ANSWER_TIMEOUT_MS);
      const settle = (o: ReplayOutcome): void => {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolve(o);
      };
      this.#pending.set(id, settle);
      try {
        this.#channel.send({ type: 'jitgate:dpop-add', id, jti, until: untilMs, now: nowMs });
      } catch {
        settle('full'); // the channel to the primary is gone
      }
    });
  }
}

/** The primary's answer to one worker request. */
export function answerReplay(cache: DpopReplayCache, m: ReplayRequest): ReplayAnswer {
  return { type: 'jitgate:dpop-added', id: m.id, outcome: cache.add(m.jti, m.until, m.now) };
}
