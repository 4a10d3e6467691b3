/**
 * The Redis DPoP replay guard (SPEC §9, RFC 9449 §11.1) against a real redis-server: set-if-absent
 * with an expiry just past the acceptance window; two gates (two guards, two connections) accept a
 * proof once; two clients' jtis never collide; Redis unreachable → `unavailable`, never fresh.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dpopKey, redisKeys } from '../../src/fleet/redis-layout.ts';
import { RedisLink } from '../../src/fleet/redis-link.ts';
import { DPOP_IAT_WINDOW_MAX_MS } from '../../src/config/schema.ts';
import { CLOCK_MARGIN_MS, RedisReplayGuard } from '../../src/fleet/redis-replay.ts';
import { startRedis, type RedisServer } from '../fixtures/redis.ts';

let redis: RedisServer;
const links: RedisLink[] = [];
const keys = redisKeys('replay:');

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const l of links) l.stop();
  await redis?.remove();
});

async function guard(url = redis.url, windowMs = 60_000, k = keys): Promise<{ guard: RedisReplayGuard; link: RedisLink; checks: string[] }> {
  const link = new RedisLink({ url, connectTimeoutMs: 5000, commandTimeoutMs: 1000, name: 'test' });
  links.push(link);
  await link.connect();
  const checks: string[] = [];
  return { guard: new RedisReplayGuard(link, k, 1000, windowMs, (o) => checks.push(o)), link, checks };
}

describe('RedisReplayGuard', () => {
  it('records a proof once across two gates; before the fleet window is read, for twice the longest window any gate may have plus the clock margin', async () => {
    const [a, b] = await Promise.all([guard(), guard()]);
    const now = Date.now();
    expect(await a.guard.add('proof-1', now + 60_000, now, 'jkt-A')).toBe('fresh');
    expect(await b.guard.add('proof-1', now + 60_000, now, 'jkt-A')).toBe('replay');
    // The same gate again: refused from its mirror, no round trip.
    expect(a.guard.has('proof-1', now, 'jkt-A')).toBe(true);
    expect(a.guard.add('proof-1', now + 60_000, now, 'jkt-A')).toBe('replay');
    const pttl = Number(await redis.command('PTTL', dpopKey(keys, 'jkt-A', 'proof-1')));
    // 2 × 10 min + 5 s, less whatever time has passed since (a loaded machine): a gate of the
    // fleet with the longest window still finds the key (a re-probe mixed 10 s and 60 s windows).
    const ttl = 2 * DPOP_IAT_WINDOW_MAX_MS + CLOCK_MARGIN_MS;
    expect(pttl).toBeLessThanOrEqual(ttl);
    expect(pttl).toBeGreaterThan(ttl - (Date.now() - now) - 50);
    expect(b.checks).toEqual(['replay']);
  });

  it('keeps a proof about to leave the recording gate\'s window as long as any other: a gate whose clock runs behind still refuses it (a review)', async () => {
    const [a, b] = await Promise.all([guard(), guard()]);
    const now = Date.now();
    // iat = now − 59 s at gate A: A would accept it one more second. Gate B's clock runs 4 s
    // behind, so B accepts it until A's now + 5 s; the key must outlive that.
    expect(await a.guard.add('old-proof', now + 1_000, now, 'jkt-O')).toBe('fresh');
    const pttl = Number(await redis.command('PTTL', dpopKey(keys, 'jkt-O', 'old-proof')));
    expect(pttl).toBeGreaterThan(5_000 + 1_000);
    expect(await b.guard.add('old-proof', now + 1_000 - 4_000, now - 4_000, 'jkt-O')).toBe('replay');
  });

  it('once agreed, a key lives twice the fleet window (the largest of the gates on the prefix) plus the clock margin (SPEC §9; a review found 20 min for a 60 s window)', async () => {
    const k = redisKeys('replay-window:');
    const a = await guard(redis.url, 60_000, k);
    const b = await guard(redis.url, 120_000, k);
    expect(await a.guard.agreeWindow()).toBe(60_000);
    let now = Date.now();
    expect(await a.guard.add('w-1', now + 60_000, now, 'jkt-W')).toBe('fresh');
    let pttl = Number(await redis.command('PTTL', dpopKey(k, 'jkt-W', 'w-1')));
    expect(pttl).toBeLessThanOrEqual(2 * 60_000 + CLOCK_MARGIN_MS);
    expect(pttl).toBeGreaterThan(2 * 60_000 + CLOCK_MARGIN_MS - (Date.now() - now) - 50);
    // A gate with a longer window joins: the fleet's is its; the first gate learns it at its next read.
    expect(await b.guard.agreeWindow()).toBe(120_000);
    expect(await a.guard.agreeWindow()).toBe(120_000);
    expect(((await redis.command('ZRANGE', k.dpopWindow, '0', '-1', 'WITHSCORES')) as unknown[]).flat().map(String)).toEqual(['ms', '120000']);
    now = Date.now();
    expect(await a.guard.add('w-2', now + 60_000, now, 'jkt-W')).toBe('fresh');
    pttl = Number(await redis.command('PTTL', dpopKey(k, 'jkt-W', 'w-2')));
    expect(pttl).toBeGreaterThan(2 * 60_000 + CLOCK_MARGIN_MS);
    expect(pttl).toBeLessThanOrEqual(2 * 120_000 + CLOCK_MARGIN_MS);
    // The shorter window never lowers the fleet's (ZADD GT).
    expect(await a.guard.agreeWindow()).toBe(120_000);
  });

  it('a window key that is not ours keeps the longest window there can be', async () => {
    const k = redisKeys('replay-window-bad:');
    const { guard: g } = await guard(redis.url, 60_000, k);
    await redis.command('SET', k.dpopWindow, 'not a sorted set');
    await expect(g.agreeWindow()).rejects.toThrow(/WRONGTYPE/);
    expect(g.windowMs).toBe(DPOP_IAT_WINDOW_MAX_MS);
    await redis.command('DEL', k.dpopWindow);
    await redis.command('ZADD', k.dpopWindow, '5', 'other');
    expect(await g.agreeWindow()).toBe(DPOP_IAT_WINDOW_MAX_MS);
  });

  it('two clients (different jkt) using the same jti never collide', async () => {
    const { guard: g } = await guard();
    const now = Date.now();
    expect(await g.add('same-jti', now + 1000, now, 'jkt-1')).toBe('fresh');
    expect(await g.add('same-jti', now + 1000, now, 'jkt-2')).toBe('fresh');
  });

  it('concurrent copies of one proof at many gates: exactly one is fresh', async () => {
    const guards = await Promise.all(Array.from({ length: 5 }, () => guard()));
    const now = Date.now();
    const outcomes = await Promise.all(guards.map((x) => x.guard.add('raced', now + 5000, now, 'jkt-R')));
    expect(outcomes.filter((o) => o === 'fresh')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'replay')).toHaveLength(4);
  });

  it('Redis unreachable: unavailable (never fresh), and fresh again once it is back', async () => {
    const { guard: g, checks } = await guard();
    await redis.kill();
    const now = Date.now();
    expect(await g.add('while-down', now + 5000, now, 'jkt-D')).toBe('unavailable');
    expect(await g.add('while-down-2', now + 5000, now, 'jkt-D')).toBe('unavailable');
    await redis.restart();
    const started = Date.now();
    while ((await g.add(`after-${Date.now()}`, Date.now() + 5000, Date.now(), 'jkt-D')) !== 'fresh') {
      if (Date.now() - started > 8000) throw new Error('not back within 8 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(checks.slice(0, 2)).toEqual(['unavailable', 'unavailable']);
  }, 20_000);
});
