/**
 * Refusal counts for a fleet (SPEC §12 on SPEC §9): with `revocation.redis` every gate sharing the
 * Redis counts one token's refusals together, so a prober spreading requests over N replicas is
 * revoked at `deny_threshold` refusals, as it would be at one gate — not at up to
 * N × (deny_threshold − 1). The third implementation of the RefusalCounting seam, beside this
 * process's own counter and the cluster primary's (src/anomaly/).
 *
 * One refusal is one Lua script, atomic in Redis:
 *   <prefix>anomaly:<h>          sorted set: one member per refusal, score = its time (ms). Kept
 *                                to the newest `deny_threshold` within the window, expiring with it.
 *   <prefix>anomaly:<h>:tripped  string, SET NX PX (the window, at most 5 s): this crossing was
 *                                reported to one gate, which revokes; the others do not.
 * h = base64url(sha256(issuer + "\n" + jti)), so any token identity is a short, safe key.
 * The same exact sliding window as the in-process counter (refusal-counter.ts): the threshold is
 * crossed when `deny_threshold` refusals lie within `window` of the newest. Times are the gates'
 * own clocks; gates whose clocks differ by d count a window d wider or narrower.
 *
 * Counting never changes an answer: Redis unreachable or slow rejects, and the watch leaves that
 * refusal uncounted and logged (a refusal is answered before it is counted).
 *
 * Why the tripped flag lapses after TRIP_HOLD_MS instead of lasting the window: the gate told of a
 * crossing may never revoke — it died, its count's answer was lost in a timeout though Redis ran
 * the script, or its write failed and so did the rearm (DEL). Held for a whole window, that would
 * leave the token a window of free probing; lapsing after a few seconds (well past the ~1 s a
 * revocation takes to reach every gate), the next refusal over the threshold tries again. When the
 * revocation did land, the token's further requests are 401 `revoked`, which are not counted.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Counted, RefusalCounting } from '../anomaly/refusal-counter.ts';
import type { RedisKeys } from './redis-layout.ts';
import type { RedisLink } from './redis-link.ts';

/** How long one crossing keeps other refusals from crossing again (see above). */
export const TRIP_HOLD_MS = 5_000;

/**
 * KEYS: the refusal set, the tripped flag. ARGV: now (ms), window (ms), threshold, a unique member,
 * the tripped flag's lifetime (ms). Returns {refusals in the window (≤ threshold), 1 when this
 * refusal crossed the threshold}.
 */
export const COUNT_SCRIPT = `
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - window))
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(n + 1))
local c = redis.call('ZCARD', KEYS[1])
redis.call('PEXPIRE', KEYS[1], window)
local crossed = 0
if c >= n and redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[5]) then crossed = 1 end
return {c, crossed}
`;

const COUNT_SHA = createHash('sha1').update(COUNT_SCRIPT).digest('hex');

export interface RedisCountingOptions {
  readonly threshold: number;
  readonly windowMs: number;
  /** A failed Redis operation (count or rearm), for the redis error counter. */
  readonly onError?: (op: 'anomaly', err: Error) => void;
}

export class RedisRefusalCounter implements RefusalCounting {
  readonly #link: RedisLink;
  readonly #prefix: string;
  readonly #o: RedisCountingOptions;
  /** Members must be unique across gates: two refusals in the same millisecond both count. */
  readonly #tag = randomBytes(6).toString('base64url');
  #seq = 0;

  constructor(link: RedisLink, keys: RedisKeys, options: RedisCountingOptions) {
    this.#link = link;
    this.#prefix = keys.anomalyPrefix;
    this.#o = options;
  }

  add(key: string, nowMs: number): Promise<Counted> {
    const set = this.#keyOf(key);
    const args = [String(Math.floor(nowMs)), String(this.#o.windowMs), String(this.#o.threshold), `${Math.floor(nowMs)}:${this.#tag}:${this.#seq++}`, String(Math.min(this.#o.windowMs, TRIP_HOLD_MS))];
    return this.#link
      .run('anomaly count', async (c) => {
        try {
          return await c.sendCommand<[number, number]>(['EVALSHA', COUNT_SHA, '2', set, `${set}:tripped`, ...args]);
        } catch (err) {
          // First use on this Redis (or after SCRIPT FLUSH / a restart): send the script itself.
          if (!/NOSCRIPT/.test((err as Error).message)) throw err;
          return await c.sendCommand<[number, number]>(['EVAL', COUNT_SCRIPT, '2', set, `${set}:tripped`, ...args]);
        }
      })
      .then(
        ([inWindow, crossed]) => ({ inWindow: Number(inWindow), crossed: Number(crossed) === 1 }),
        (err: unknown) => {
          this.#o.onError?.('anomaly', err as Error);
          throw err;
        },
      );
  }

  /** The revocation failed: the next refusal over the threshold, at any gate, tries again. */
  rearm(key: string): void {
    this.#link.run('anomaly rearm', (c) => c.sendCommand(['DEL', `${this.#keyOf(key)}:tripped`])).catch((err: unknown) => this.#o.onError?.('anomaly', err as Error));
  }

  #keyOf(key: string): string {
    return `${this.#prefix}${createHash('sha256').update(key).digest('base64url')}`;
  }
}
