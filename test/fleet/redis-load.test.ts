/**
 * Loading the live set in pages (SPEC §9, docs/fleet.md "Catch up"): a reload of a large set reads
 * it a page at a time with the event loop free between pages, so the gate answers meanwhile with
 * the list it had plus the records logged since the load began; and entries deleted below the read
 * position while it runs (the sweepers' expired ones, at the bottom of the set) make it skip nothing.
 * A relay with a slow reply path stretches the load over seconds; `CLIENT LIST` shows where it is.
 */
import { createClient } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeEntry, redisKeys } from '../../src/fleet/redis-layout.ts';
import { logged, type BuiltGate } from '../fixtures/built-gate.ts';
import { bearer, input } from '../fixtures/gate.ts';
import { startRelay, type Relay } from '../fixtures/redis.ts';
import { startRedisGates, type RedisGates } from '../fixtures/redis-gates.ts';
import { sign } from '../fixtures/tokens.ts';

let fleet: RedisGates;
let relay: Relay;

beforeAll(async () => {
  fleet = await startRedisGates();
  relay = await startRelay(fleet.redis.port);
});
afterAll(async () => {
  await relay?.close();
  await fleet?.remove();
});
afterEach(async () => {
  relay.slow(0);
  await fleet.runDeferred();
});

const now = (): number => Math.floor(Date.now() / 1000);
async function reason(g: BuiltGate, jti: string): Promise<string> {
  const t = await sign(fleet.key, { iat: now(), exp: now() + 300, jti });
  return (await g.gate.decide(input('GET', '/orders/42', bearer(t)))).reason;
}
async function until(check: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
/** ZADD of `n` jti entries named `${name}-<i>`, with score and exp `exp` (undefined: none, +inf). */
async function addEntries(key: string, name: string, n: number, exp?: number): Promise<void> {
  const args: string[] = [];
  for (let i = 0; i < n; i++) args.push(exp === undefined ? '+inf' : String(exp), encodeEntry({ kind: 'jti', jti: `${name}-${i}`, exp }));
  await fleet.redis.command('ZADD', key, ...args);
}
/** The last command Redis ran for the gate's revocation follower. */
async function followerCommand(): Promise<string | undefined> {
  const list = String(await fleet.redis.command('CLIENT', 'LIST'));
  const line = list.split('\n').find((l) => l.includes('name=jitgate-revocation-follower'));
  return /\bcmd=(\S+)/.exec(line ?? '')?.[1];
}
const loads = (g: BuiltGate): Array<Record<string, unknown>> => logged(g.logs, 'revocation list loaded from redis');

/**
 * A gate (through the relay) that loaded `n` entries named `name-<i>` plus one written through its own
 * writer (`logged`, so the log exists), and then — its link slowed to 150 ms per answer, its log
 * deleted — is reloading: returns once Redis has run the reload's first page. `before` runs once
 * the gate follows, before the reload.
 */
async function reloading(prefix: string, name: string, n: number, before?: () => Promise<void>): Promise<{ g: BuiltGate; k: ReturnType<typeof redisKeys> }> {
  const k = redisKeys(prefix);
  await addEntries(k.live, name, n);
  const g = await fleet.gate({ prefix, redis: { url: relay.url } });
  expect(loads(g)).toHaveLength(1);
  await g.gate.fleet!.writer.write([{ kind: 'jti', jti: 'logged', exp: undefined }]);
  await until(async () => (await followerCommand()) === 'xread', 5_000, 'the follower following');
  await before?.();
  relay.slow(150); // every answer waits 150 ms: the reload takes seconds
  await fleet.redis.command('DEL', k.log); // a log reset: the gate reloads the whole set
  await until(async () => (await followerCommand()) === 'zrange', 5_000, 'the reload reading pages');
  return { g, k };
}

describe('loading the live set in pages', () => {
  it('a reload answers meanwhile with the list it had, and enforces records logged since it began before it completes', async () => {
    const { g, k } = await reloading('pages:', 'old', 40_000); // ten pages
    // Written after the load's XINFO, straight to Redis (the gate's own writer would apply it at once).
    await fleet.redis.command('ZADD', k.live, '+inf', encodeEntry({ kind: 'jti', jti: 'during', exp: undefined }));
    await fleet.redis.command('XADD', k.log, '*', 'entry', encodeEntry({ kind: 'jti', jti: 'during', exp: undefined }));

    expect(await reason(g, 'old-39999')).toBe('revoked'); // the list it had answers meanwhile
    await until(async () => (await reason(g, 'during')) === 'revoked', 5_000, 'the record logged during the load enforced');
    expect(loads(g)).toHaveLength(1); // the reload is still under way
    expect(await reason(g, 'fresh')).toBe('granted');

    await until(() => loads(g).length === 2, 20_000, 'the reload completing');
    expect(loads(g)[1]).toMatchObject({ in_redis: 40_002, entries: 40_002 });
    for (const jti of ['during', 'logged', 'old-0', 'old-20000']) expect(await reason(g, jti)).toBe('revoked');
  }, 40_000);

  it('entries deleted below the read position during a load (expired ones, at the bottom) make it skip none above', async () => {
    // Below the top four pages (score +inf), two pages this gate has never held, deleted while the reload reads the top.
    const soon = now() + 3_600;
    const { g, k } = await reloading('bottom:', 'keep', 16_000, () => addEntries(redisKeys('bottom:').live, 'low', 8_000, soon));
    expect(Number(await fleet.redis.command('ZREMRANGEBYSCORE', k.live, '-inf', String(soon)))).toBe(8_000);

    await until(() => loads(g).length === 2, 20_000, 'the reload completing');
    // Every entry above the deleted ones came from Redis: none had to be restored from what the gate held.
    expect(loads(g)[1]).toMatchObject({ in_redis: 16_001 });
    expect(logged(g.logs, 'held entries missing from redis')).toHaveLength(0);
  }, 40_000);

  it('500 members moved from above the read position to below it (a broker re-scoring them) make it skip none', async () => {
    const { g, k } = await reloading('moved:', 'keep', 16_000);
    // Read in the first page, now below every other member: each unread one moves up 500 ranks.
    const top = (await fleet.redis.command('ZRANGE', k.live, '-500', '-1')) as string[];
    const low = String(now() + 3_600);
    await fleet.redis.command('ZADD', k.live, ...top.flatMap((m) => [low, m]));

    await until(() => loads(g).length === 2, 20_000, 'the reload completing');
    expect(loads(g)[1]).toMatchObject({ in_redis: 16_001 });
    expect(logged(g.logs, 'held entries missing from redis')).toHaveLength(0);
  }, 40_000);

  it('a log deleted and recreated during a fresh gate load, with the record of a revocation the pages had passed: noticed, and the revocation loaded', async () => {
    const prefix = 'recreated:';
    const k = redisKeys(prefix);
    await addEntries(k.live, 'keep', 16_000);
    const logged1 = encodeEntry({ kind: 'jti', jti: 'logged', exp: undefined });
    await fleet.redis.command('ZADD', k.live, '+inf', logged1);
    await fleet.redis.command('XADD', k.log, '*', 'entry', logged1); // the log exists, one record added

    relay.slow(150);
    const starting = fleet.gate({ prefix, redis: { url: relay.url } });
    await until(async () => (await followerCommand()) === 'zrange', 5_000, 'the load reading pages');
    // Written the documented way (set and log), at the top of the set, which the pages have passed;
    // the log deleted in the same transaction, so no read of it ever sees the record.
    const r1 = encodeEntry({ kind: 'jti', jti: 'r1', exp: undefined });
    const client = createClient({ url: fleet.redis.url });
    await client.connect();
    try {
      await client.multi().addCommand(['ZADD', k.live, '+inf', r1]).addCommand(['XADD', k.log, '*', 'entry', r1]).addCommand(['DEL', k.log]).exec();
    } finally {
      client.destroy();
    }
    // The next write, still during the load, makes a new log: fewer records ever added than the gate
    // will have seen (the first log's one, and this one read by the load), so a reset, not a gap.
    const r2 = encodeEntry({ kind: 'jti', jti: 'r2', exp: undefined });
    await fleet.redis.command('ZADD', k.live, '+inf', r2);
    await fleet.redis.command('XADD', k.log, '*', 'entry', r2);
    const g = await starting;
    relay.slow(0);
    await until(async () => (await reason(g, 'r1')) === 'revoked', 10_000, 'r1 loaded again');
    expect(await reason(g, 'r2')).toBe('revoked');
    expect(logged(g.logs, 'cannot be followed from here').map((l) => String(l.why))).toContainEqual(expect.stringContaining('the log was recreated'));
  }, 40_000);

  it('a slow link (every answer 1.2 s late) still completes a load: the reads of the log during it wait as long as a page', async () => {
    const prefix = 'slow:';
    const k = redisKeys(prefix);
    await addEntries(k.live, 'keep', 12_000); // four pages, a read of the log queued behind each after the first
    relay.slow(1_200);
    const g = await fleet.gate({ prefix, redis: { url: relay.url } });
    relay.slow(0);
    expect(g.gate.readiness().ready).toBe(true);
    expect(loads(g)[0]).toMatchObject({ in_redis: 12_000 });
    expect(await reason(g, 'keep-11999')).toBe('revoked');
  }, 40_000);
});
