/**
 * DPoP proof single use across every gate sharing a Redis (SPEC §9, `dpop.replay: redis`; RFC 9449
 * §11.1). The same seam as the local cache and the cluster primary's (ReplayGuard): the decision
 * never learns which one records.
 *
 * Each accepted proof is `SET <prefix>dpop:<jkt>:<sha256(jti)> 1 NX PX <ms>`: set-if-absent is the
 * check and the record in one atomic step. The key lives 2 × the fleet's dpop.iat_window + 5 s from
 * when this gate recorded it, whatever the proof's iat (SPEC §9: "an expiry just past its acceptance
 * window"): a gate accepts a proof while its iat is within its window of its own clock, so a proof is
 * acceptable somewhere for at most twice the largest window in the fleet plus the clocks' difference.
 * An expiry from the recording gate's clock (iat + window − now) let a gate whose clock ran more than
 * a second behind accept the proof again once the key was gone (a review), and one from the recording
 * gate's own window let a gate with a longer window accept it (a re-probe: windows 10 s and 60 s on
 * one Redis). So the window is the fleet's: every gate adds its own to `<prefix>dpop-window` with
 * `ZADD GT` (the largest stays) and reads the largest back, at start and every WINDOW_REFRESH_MS.
 * Until it has read it (Redis away at start, a Redis before 6.2 without GT) a gate uses the longest
 * window there can be, 10 min, as every key did before 2026-12-07 (20 min per key: 20 × the memory a
 * fleet on the default 60 s needs, a review found). A fleet window is lowered by deleting the key once
 * every gate runs the lower value.
 * Keyed by the client's
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

/** How often a gate adds its window to the fleet's and reads the largest back. */
export const WINDOW_REFRESH_MS = 10_000;

/** The member of `<prefix>dpop-window` whose score is the window. */
const WINDOW_MEMBER = 'ms';

const ttlFor = (windowMs: number): string => String(2 * windowMs + CLOCK_MARGIN_MS);

export class RedisReplayGuard implements ReplayGuard {
  readonly #link: RedisLink;
  readonly #keys: RedisKeys;
  readonly #mirror: DpopReplayCache;
  readonly #onCheck: ((result: ReplayOutcome) => void) | undefined;
  /** This gate's dpop.iat_window (ms). */
  readonly #windowMs: number;
  /** The fleet's window as last read from Redis; undefined until then (the longest there can be is used). */
  #fleetWindowMs: number | undefined;
  /** How long a key lives: 2 × the fleet's iat_window + CLOCK_MARGIN_MS. */
  #ttl = ttlFor(DPOP_IAT_WINDOW_MAX_MS);
  #refresh: NodeJS.Timeout | undefined;
  readonly stats: ReplayStats = { fresh: 0, replays: 0, refusedFull: 0 };

  constructor(link: RedisLink, keys: RedisKeys, mirrorEntries: number, windowMs: number, onCheck?: (result: ReplayOutcome) => void) {
    this.#link = link;
    this.#keys = keys;
    this.#mirror = new DpopReplayCache(mirrorEntries);
    this.#windowMs = windowMs;
    this.#onCheck = onCheck;
  }

  /** The window keys are recorded for (ms): the fleet's once read, else the longest there can be. */
  get windowMs(): number {
    return this.#fleetWindowMs ?? DPOP_IAT_WINDOW_MAX_MS;
  }

  /**
   * Adds this gate's window to the fleet's (`ZADD GT`: the largest stays) and reads the largest back.
   * A member that is not a window (someone else's key) keeps the longest window there can be.
   */
  async agreeWindow(): Promise<number> {
    const key = this.#keys.dpopWindow;
    const reply = await this.#link.run('dpop window', async (c) => {
      await c.sendCommand(['ZADD', key, 'GT', String(this.#windowMs), WINDOW_MEMBER]);
      return c.sendCommand<unknown[]>(['ZRANGE', key, '0', '-1', 'WITHSCORES']);
    });
    // RESP2 answers member, score, member, score…; RESP3 [member, score] pairs.
    const flat = reply.flat();
    let fleet = this.#windowMs;
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const score = Number(flat[i + 1]);
      if (String(flat[i]) !== WINDOW_MEMBER || !Number.isInteger(score) || score < 1_000 || score > DPOP_IAT_WINDOW_MAX_MS) fleet = DPOP_IAT_WINDOW_MAX_MS;
      else fleet = Math.max(fleet, score);
    }
    this.#fleetWindowMs = fleet;
    this.#ttl = ttlFor(fleet);
    return fleet;
  }

  /** Reads the fleet's window again every WINDOW_REFRESH_MS (a gate with a longer one may join). */
  start(onError: (err: Error) => void): void {
    this.#refresh = setInterval(() => this.agreeWindow().catch(onError), WINDOW_REFRESH_MS);
    this.#refresh.unref();
  }

  stop(): void {
    if (this.#refresh !== undefined) clearInterval(this.#refresh);
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
