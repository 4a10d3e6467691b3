/**
 * Refusal counts for a fleet (SPEC §12 on SPEC §9): with `revocation.redis` every gate sharing the
 * Redis counts one token's refusals together, so a prober spreading requests over N replicas is
 * revoked at `deny_threshold` refusals, as it would be at one gate — not at up to
 * N × (deny_threshold − 1). The third implementation of the RefusalCounting seam, beside this
 * process's own counter and the cluster primary's (src/anomaly/).
 *
 * One refusal is one MULTI/EXEC, atomic in Redis (no Lua: a locked-down Redis user needs no EVAL):
 *   <prefix>anomaly:<h>          sorted set: one member per refusal, score = its time (ms). Kept
 *                                to the newest `deny_threshold` within the window, expiring with it.
 * and, only when that leaves `deny_threshold` refusals in the window, a second round trip:
 *   <prefix>anomaly:<h>:tripped  string, SET NX PX (the window, at most 5 s): the one gate whose SET
 *                                succeeds was told of this crossing and revokes; the others do not.
 * h = base64url(sha256(issuer + "\n" + jti)), so any token identity is a short, safe key.
 * The same exact sliding window as the in-process counter (refusal-counter.ts): the threshold is
 * crossed when `deny_threshold` refusals lie within `window` of the newest. Times are the gates'
 * own clocks; gates whose clocks differ by d count a window d wider or narrower.
 *
 * Counting never changes an answer: Redis unreachable or slow rejects, and the watch leaves that
 * refusal uncounted and logged (a refusal is answered before it is counted).
 *
 * Why the tripped flag lapses after TRIP_HOLD_MS instead of lasting the window: the gate told of a
 * crossing may never revoke — it died, its count's answer was lost in a timeout though Redis took
 * the flag, or its write failed and so did the rearm (DEL). Held for a whole window, that would
 * leave the token a window of free probing; lapsing after a few seconds (well past the ~1 s a
 * revocation takes to reach every gate), the next refusal over the threshold tries again. When the
 * revocation did land, the token's further requests are 401 `revoked`, which are not counted.
 */
import { randomBytes } from 'node:crypto';
import { TRIP_HOLD_MS, type Counted, type RefusalCounting } from '../anomaly/refusal-counter.ts';
import { anomalyKey, anomalyTrippedKey, type RedisKeys } from './redis-layout.ts';
import type { RedisLink } from './redis-link.ts';

export interface RedisCountingOptions {
  readonly threshold: number;
  readonly windowMs: number;
  /** A failed Redis operation (count or rearm), for the redis error counter. */
  readonly onError?: (err: Error) => void;
}

export class RedisRefusalCounter implements RefusalCounting {
  readonly #link: RedisLink;
  readonly #keys: RedisKeys;
  readonly #o: RedisCountingOptions;
  /** Members must be unique across gates: two refusals in the same millisecond both count. */
  readonly #tag = randomBytes(6).toString('base64url');
  #seq = 0;

  constructor(link: RedisLink, keys: RedisKeys, options: RedisCountingOptions) {
    this.#link = link;
    this.#keys = keys;
    this.#o = options;
  }

  add(key: string, nowMs: number): Promise<Counted> {
    const set = anomalyKey(this.#keys, key);
    const now = Math.floor(nowMs);
    const { threshold, windowMs } = this.#o;
    const member = `${now}:${this.#tag}:${this.#seq++}`;
    return this.#link
      .run('anomaly count', async (c) => {
        const m = c.multi();
        m.addCommand(['ZADD', set, String(now), member]);
        // The same window as the in-process counter: a refusal counts while now − its time ≤ window.
        m.addCommand(['ZREMRANGEBYSCORE', set, '-inf', `(${now - windowMs}`]);
        m.addCommand(['ZREMRANGEBYRANK', set, '0', String(-(threshold + 1))]);
        m.addCommand(['ZCARD', set]);
        m.addCommand(['PEXPIRE', set, String(windowMs)]);
        const inWindow = Number((await m.exec())[3]);
        if (inWindow < threshold) return { inWindow, crossed: false };
        const taken = await c.sendCommand<string | null>(['SET', anomalyTrippedKey(set), '1', 'NX', 'PX', String(Math.min(windowMs, TRIP_HOLD_MS))]);
        return { inWindow, crossed: taken === 'OK' };
      })
      .catch((err: unknown) => {
        this.#o.onError?.(err as Error);
        throw err;
      });
  }

  /** The revocation failed: the next refusal over the threshold, at any gate, tries again. */
  rearm(key: string): void {
    this.#link.run('anomaly rearm', (c) => c.sendCommand(['DEL', anomalyTrippedKey(anomalyKey(this.#keys, key))])).catch((err: unknown) => this.#o.onError?.(err as Error));
  }
}
