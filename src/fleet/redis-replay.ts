/**
 * DPoP proof single use across every gate sharing a Redis (SPEC §9, `dpop.replay: redis`; RFC 9449
 * §11.1). The same seam as the local cache and the cluster primary's (ReplayGuard): the decision
 * never learns which one records.
 *
 * Each accepted proof is `SET <prefix>dpop:<jkt>:<sha256(jti)> 1 NX PX <ms>`: set-if-absent is the
 * check and the record in one atomic step. The key lives 2 × the longest dpop.iat_window (10 min)
 * + 5 s from when this gate recorded it, whatever the proof's iat and whatever this gate's own window:
 * a gate accepts a proof while its iat is within *its* window of *its own* clock, so a proof is
 * acceptable somewhere for at most twice the largest window in the fleet plus the clocks' difference.
 * An expiry from the recording gate's clock (iat + window − now) let a gate whose clock ran more than
 * a second behind accept the proof again once the key was gone (a review), and one from the recording
 * gate's own window let a gate with a longer window accept it (a re-probe: windows 10 s and 60 s on
 * one Redis). Keyed by the client's
 * key thumbprint, so two clients' proofs never collide. Redis unreachable, slow or answering an
 * error → `unavailable` (503 replay_check_unavailable): a proof is never accepted unrecorded.
 *
 * A small local mirror remembers the proofs this gate saw, so a replay that comes back to the same
 * gate is refused without a round trip (and a flood of one captured proof stays cheap).
 */
import { DPOP_IAT_WINDOW_MAX_MS } from '../config/schema.ts';
import { DpopReplayCache, type ReplayGuard, type ReplayOutcome, type ReplayStats } from '../cache/dpop-replay.ts';
import { dpopKey, type RedisKeys } from './redis-layout.ts';
import type { RedisLink } from './redis-link.ts';

/** Beyond twice the acceptance window: the clocks of the gates sharing the Redis may differ this much. */
export const CLOCK_MARGIN_MS = 5_000;

export class RedisReplayGuard implements ReplayGuard {
  readonly #link: RedisLink;
  readonly #keys: RedisKeys;
  readonly #mirror: DpopReplayCache;
  readonly #onCheck: ((result: ReplayOutcome) => void) | undefined;
  /** How long a key lives: 2 × the longest iat_window + CLOCK_MARGIN_MS. */
  readonly #ttl = String(2 * DPOP_IAT_WINDOW_MAX_MS + CLOCK_MARGIN_MS);
  readonly stats: ReplayStats = { fresh: 0, replays: 0, refusedFull: 0 };

  constructor(link: RedisLink, keys: RedisKeys, mirrorEntries: number, onCheck?: (result: ReplayOutcome) => void) {
    this.#link = link;
    this.#keys = keys;
    this.#mirror = new DpopReplayCache(mirrorEntries);
    this.#onCheck = onCheck;
  }

  has(jti: string, nowMs: number, jkt = ''): boolean {
    return this.#mirror.has(`${jkt} ${jti}`, nowMs);
  }

  add(jti: string, untilMs: number, nowMs: number, jkt = ''): ReplayOutcome | Promise<ReplayOutcome> {
    const local = `${jkt} ${jti}`;
    if (this.#mirror.has(local, nowMs)) return this.#count('replay');
    const key = dpopKey(this.#keys, jkt, jti);
    return this.#link.run('dpop replay SET', (c) => c.sendCommand<string | null>(['SET', key, '1', 'NX', 'PX', this.#ttl])).then(
      (reply) => {
        // Fresh or not, the proof is used now: a second copy at this gate needs no round trip.
        this.#mirror.add(local, untilMs, nowMs);
        return this.#count(reply === 'OK' ? 'fresh' : 'replay');
      },
      () => this.#count('unavailable'),
    );
  }

  #count(o: ReplayOutcome): ReplayOutcome {
    if (o === 'fresh') this.stats.fresh++;
    else if (o === 'replay') this.stats.replays++;
    this.#onCheck?.(o);
    return o;
  }
}
