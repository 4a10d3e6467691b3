/**
 * The fleet's refusal count (SPEC §12 on §9, src/fleet/redis-refusal-counter.ts) against a real
 * redis-server: the same exact sliding window as the in-process counter; two gates (two counters,
 * two connections) add up; one crossing per burst until rearmed or until the hold lapses; Redis
 * unreachable → a rejection, counted as an error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisKeys } from '../../src/fleet/redis-layout.ts';
import { RedisLink } from '../../src/fleet/redis-link.ts';
import { TRIP_HOLD_MS } from '../../src/anomaly/refusal-counter.ts';
import { RedisRefusalCounter, type RedisCountingOptions } from '../../src/fleet/redis-refusal-counter.ts';
import { RefusalCounter } from '../../src/anomaly/refusal-counter.ts';
import { startRedis, type RedisServer } from '../fixtures/redis.ts';

let redis: RedisServer;
const links: RedisLink[] = [];
let prefixes = 0;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const l of links) l.stop();
  await redis?.remove();
});

/** Each test counts under its own prefix (`prefix`, or a fresh one), so their keys never meet. */
async function counter(options: Omit<RedisCountingOptions, 'onError'>, url = redis.url, prefix = `count${++prefixes}:`): Promise<{ counter: RedisRefusalCounter; errors: string[]; prefix: string }> {
  const link = new RedisLink({ url, connectTimeoutMs: 5000, commandTimeoutMs: 1000, name: 'test' });
  links.push(link);
  await link.connect();
  const errors: string[] = [];
  return { counter: new RedisRefusalCounter(link, redisKeys(prefix), { ...options, onError: (err) => errors.push(err.message) }), errors, prefix };
}

describe('RedisRefusalCounter', () => {
  it('counts in an exact sliding window, as the in-process counter does, refusal for refusal', async () => {
    const { counter: fleet } = await counter({ threshold: 3, windowMs: 1000 });
    const local = new RefusalCounter(3, 1000, 100);
    // Times chosen to straddle the window's edge both ways (1000 − 0 is inside, 1201 − 200 is not).
    const times = [0, 600, 1200, 1201, 1500, 2700, 2701, 3700, 3702];
    const base = Date.now();
    for (const t of times) {
      // The count only: the crossing flag lapses on Redis's clock (PX), the in-process one on these
      // made-up times, so past the first crossing they may differ by design.
      const ours = await fleet.add('iss\nwindow-1', base + t);
      expect(ours.inWindow, `at +${t} ms`).toBe(local.add('iss\nwindow-1', base + t).inWindow);
    }
  });

  it('two gates count one token together and exactly one of them is told it crossed', async () => {
    const a = await counter({ threshold: 4, windowMs: 60_000 });
    const b = await counter({ threshold: 4, windowMs: 60_000 }, redis.url, a.prefix);
    const now = Date.now();
    const inTurn = [];
    for (const [i, c] of [a, b, a, b, a, b].entries()) inTurn.push(await c.counter.add('iss\ntwo-gates', now + i));
    expect(inTurn.map((r) => r.inWindow)).toEqual([1, 2, 3, 4, 4, 4]);
    expect(inTurn.map((r) => r.crossed)).toEqual([false, false, false, true, false, false]);
    // All at once over both connections: each count is atomic, so still one crossing.
    const burst = await Promise.all([a, b, a, b, a, b].map((c, i) => c.counter.add('iss\nburst', now + i)));
    expect(burst.map((r) => r.inWindow).sort()).toEqual([1, 2, 3, 4, 4, 4]);
    expect(burst.filter((r) => r.crossed)).toHaveLength(1);
    // Another token is counted apart.
    expect(await a.counter.add('iss\nother', now)).toEqual({ inWindow: 1, crossed: false });
  });

  it('a crossing is reported once; rearm (a failed revocation) lets the next refusal cross again', async () => {
    const { counter: c } = await counter({ threshold: 2, windowMs: 60_000 });
    const now = Date.now();
    expect((await c.add('iss\nrearm', now)).crossed).toBe(false);
    expect((await c.add('iss\nrearm', now + 1)).crossed).toBe(true);
    expect((await c.add('iss\nrearm', now + 2)).crossed).toBe(false);
    c.rearm('iss\nrearm');
    // rearm does not wait for its DEL; the next command on the same connection runs after it.
    expect((await c.add('iss\nrearm', now + 3)).crossed).toBe(true);
  });

  it('the crossing flag lapses after min(window, TRIP_HOLD_MS), so a crossing nobody acted on is reported again', async () => {
    expect(TRIP_HOLD_MS).toBe(5_000);
    const { counter: c, prefix } = await counter({ threshold: 2, windowMs: 400 });
    const t0 = Date.now();
    expect((await c.add('iss\nlapse', t0)).crossed).toBe(false);
    expect((await c.add('iss\nlapse', t0 + 1)).crossed).toBe(true);
    const flag = (await redis.command('KEYS', `${prefix}*:tripped`)) as string[];
    expect(flag).toHaveLength(1);
    const pttl = Number(await redis.command('PTTL', flag[0]!));
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(400);
    await new Promise((r) => setTimeout(r, pttl + 50));
    // The flag is gone; two refusals within the window cross again.
    const t1 = Date.now();
    expect((await c.add('iss\nlapse', t1)).crossed).toBe(false);
    expect((await c.add('iss\nlapse', t1 + 1)).crossed).toBe(true);
  });

  it('keys are short hashes of the token identity and expire with the window', async () => {
    const { counter: c, prefix } = await counter({ threshold: 5, windowMs: 30_000 });
    await c.add(`iss\n${'j'.repeat(5000)}`, Date.now());
    const found = (await redis.command('KEYS', `${prefix}*`)) as string[];
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(new RegExp(`^${prefix}anomaly:[A-Za-z0-9_-]{43}$`));
    const pttl = Number(await redis.command('PTTL', found[0]!));
    expect(pttl).toBeGreaterThan(25_000);
    expect(pttl).toBeLessThanOrEqual(30_000);
  });

  it('Redis unreachable: add rejects and the failure is reported, never a count', async () => {
    const { counter: c, errors } = await counter({ threshold: 3, windowMs: 60_000 });
    const gone = await startRedis();
    const { counter: lost, errors: lostErrors } = await counter({ threshold: 3, windowMs: 60_000 }, gone.url);
    await gone.remove();
    await expect(lost.add('iss\nlost', Date.now())).rejects.toThrow(/Redis|closed|ECONNREFUSED|socket/i);
    expect(lostErrors).toHaveLength(1);
    expect(lostErrors[0]).toMatch(/Redis|closed|ECONNREFUSED|socket/i);
    expect(errors).toEqual([]);
    expect(await c.add('iss\nlost', Date.now())).toEqual({ inWindow: 1, crossed: false });
  });
});
