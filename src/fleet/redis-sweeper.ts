/**
 * Keeps Redis bounded (SPEC §9): every second, on Redis's own clock (TIME), removes live entries
 * whose `exp` plus the largest issuer clock_tolerance has passed (ZREMRANGEBYSCORE) and trims the
 * change log to LOG_RETENTION_MS (XTRIM MINID). Leaderless: every gate sweeps; both commands are
 * idempotent, so N gates sweeping cost N small commands a second and never disagree. They are sent
 * pipelined, not in a MULTI, so a Redis full under `noeviction` still accepts them.
 * DPoP keys need no sweep: they carry their own expiry.
 *
 * A record whose id lies in the future (XADD with an explicit id, a Redis clock that jumped) would
 * never fall below MINID, and every record after it inherits an id above it: the log would grow
 * for ever. A log whose newest id is more than FUTURE_TOLERANCE_MS ahead of Redis's clock is
 * deleted instead; every record in it is also in the live set, and each gate notices the log is
 * gone (redis-stream-ids.ts) and reloads the live set.
 */
import { LOG_RETENTION_MS, streamIdMs, type RedisKeys } from './redis-layout.ts';
import type { RedisLink } from './redis-link.ts';

const SWEEP_EVERY_MS = 1_000;
/** Far beyond any clock skew between Redis's own `*` ids and its TIME. */
export const FUTURE_TOLERANCE_MS = 60_000;

export class RedisSweeper {
  readonly #link: RedisLink;
  readonly #keys: RedisKeys;
  readonly #toleranceSec: number;
  readonly #onError: (err: Error) => void;
  readonly #onFuture: ((newestId: string) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(link: RedisLink, keys: RedisKeys, toleranceSec: number, onError: (err: Error) => void, onFuture?: (newestId: string) => void) {
    this.#link = link;
    this.#keys = keys;
    this.#toleranceSec = toleranceSec;
    this.#onError = onError;
    this.#onFuture = onFuture;
  }

  start(): void {
    // Jittered so a fleet started together does not sweep in lockstep.
    this.#timer = setInterval(() => void this.sweep(), SWEEP_EVERY_MS * (0.75 + Math.random() / 2));
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One sweep; never rejects (failures are reported through onError). */
  async sweep(): Promise<void> {
    if (this.#running || this.#link.client === undefined) return;
    this.#running = true;
    try {
      // Two round trips (TIME, then the three commands pipelined), so twice the one-command deadline:
      // a Redis answering each command within command_timeout is not dropped as dead by its sweep,
      // which shares the connection with DPoP checks and revocation writes.
      await this.#link.run(
        'sweep',
        async (c) => {
          const [sec, usec] = await c.sendCommand<[string, string]>(['TIME']);
          const nowMs = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
          // Not in a MULTI: each is idempotent, and Redis at maxmemory (noeviction) refuses a whole
          // MULTI holding writes, while it still runs these deletions on their own — the sweep is what
          // frees it again.
          const [, newest] = await Promise.all([
            c.sendCommand<number>(['ZREMRANGEBYSCORE', this.#keys.live, '-inf', `(${Number(sec) - this.#toleranceSec}`]),
            c.sendCommand<Array<[string, string[]]>>(['XREVRANGE', this.#keys.log, '+', '-', 'COUNT', '1']),
            c.sendCommand<number>(['XTRIM', this.#keys.log, 'MINID', String(nowMs - LOG_RETENTION_MS)]),
          ]);
          const newestId = newest[0]?.[0];
          if (newestId !== undefined && streamIdMs(newestId) > nowMs + FUTURE_TOLERANCE_MS) {
            await c.sendCommand(['DEL', this.#keys.log]);
            this.#onFuture?.(newestId);
          }
        },
        2 * this.#link.commandTimeoutMs,
      );
    } catch (err) {
      this.#onError(err as Error);
    } finally {
      this.#running = false;
    }
  }
}
