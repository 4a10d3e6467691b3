/**
 * Keeps Redis bounded (SPEC §9): every second, on Redis's own clock (TIME), removes live entries
 * whose `exp` plus the largest issuer clock_tolerance has passed (ZREMRANGEBYSCORE) and trims the
 * change log to LOG_RETENTION_MS (XTRIM MINID). Leaderless: every gate sweeps; both commands are
 * idempotent, so N gates sweeping cost N small commands a second and never disagree.
 * DPoP keys need no sweep: they carry their own expiry.
 */
import { LOG_RETENTION_MS, type RedisKeys } from './redis-layout.ts';
import type { RedisLink } from './redis-link.ts';

const SWEEP_EVERY_MS = 1_000;

export class RedisSweeper {
  readonly #link: RedisLink;
  readonly #keys: RedisKeys;
  readonly #toleranceSec: number;
  readonly #onError: (err: Error) => void;
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(link: RedisLink, keys: RedisKeys, toleranceSec: number, onError: (err: Error) => void) {
    this.#link = link;
    this.#keys = keys;
    this.#toleranceSec = toleranceSec;
    this.#onError = onError;
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
      await this.#link.run('sweep', async (c) => {
        const [sec, usec] = await c.sendCommand<[string, string]>(['TIME']);
        const nowMs = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
        await c
          .multi()
          .addCommand(['ZREMRANGEBYSCORE', this.#keys.live, '-inf', `(${Number(sec) - this.#toleranceSec}`])
          .addCommand(['XTRIM', this.#keys.log, 'MINID', String(nowMs - LOG_RETENTION_MS)])
          .exec();
      });
    } catch (err) {
      this.#onError(err as Error);
    } finally {
      this.#running = false;
    }
  }
}
