/**
 * What Redis can do behind a running gate's back (SPEC §5, §9), against a real redis-server with
 * gates built by buildGate: the change log deleted or recreated with lower ids (a reset, a
 * restore, a failover), a record dated in the future, and a live set that comes back empty. None
 * of these may make a gate forget a revocation or miss a later one.
 */
import { rm } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { redisKeys } from '../../src/fleet/redis-layout.ts';
import { restoreLive } from '../../src/fleet/redis-writer.ts';
import { logged, type BuiltGate } from '../fixtures/built-gate.ts';
import { bearer, input } from '../fixtures/gate.ts';
import type { TestKey } from '../fixtures/keys.ts';
import { startRedis, type RedisServer } from '../fixtures/redis.ts';
import { startRedisGates, type RedisGates } from '../fixtures/redis-gates.ts';
import { sign } from '../fixtures/tokens.ts';

let fleet: RedisGates;
let redis: RedisServer;
let key: TestKey;

beforeAll(async () => {
  fleet = await startRedisGates();
  ({ redis, key } = fleet);
});
afterAll(async () => {
  await fleet?.remove();
});
afterEach(async () => {
  await fleet.runDeferred();
});

const now = (): number => Math.floor(Date.now() / 1000);
async function reason(g: BuiltGate, jti: string): Promise<string> {
  const t = await sign(key, { iat: now(), exp: now() + 300, jti });
  return (await g.gate.decide(input('GET', '/orders/42', bearer(t)))).reason;
}
async function until(check: () => Promise<boolean> | boolean, ms: number): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - started;
}
/** What a broker writes (docs/fleet.md "Layout"): ZADD + XADD in one MULTI, ids from Redis. */
async function brokerRevoke(prefix: string, jti: string): Promise<void> {
  const k = redisKeys(prefix);
  const json = JSON.stringify({ jti });
  await redis.command('EVAL', `redis.call('ZADD', KEYS[1], '+inf', ARGV[1]); return redis.call('XADD', KEYS[2], '*', 'entry', ARGV[1])`, '2', k.live, k.log, json);
}

describe('a change log reset behind the gates', () => {
  it('a log deleted after a future-dated record: later revocations still reach every gate, the writer at once', async () => {
    const prefix = 'reset:';
    const k = redisKeys(prefix);
    const [a, b] = [await fleet.gate({ prefix }), await fleet.gate({ prefix })];
    await redis.command('XADD', k.log, '9999999999999-0', 'entry', '{"jti":"decoy"}');
    await until(async () => (await reason(a, 'decoy')) === 'revoked' && (await reason(b, 'decoy')) === 'revoked', 3000);
    await redis.command('DEL', k.log);

    await a.gate.fleet!.writer.write([{ kind: 'jti', jti: 'victim', exp: undefined }]);
    // The gate that answered the write enforces it without waiting for its follower.
    expect(await reason(a, 'victim')).toBe('revoked');
    // The other gate notices the log went backwards and reloads the live set.
    await until(async () => (await reason(b, 'victim')) === 'revoked', 4000);
    expect(logged(b.logs, 'redis revocation log cannot be followed').length).toBeGreaterThan(0);

    // And it keeps following the new log afterwards.
    await brokerRevoke(prefix, 'after-reset');
    await until(async () => (await reason(a, 'after-reset')) === 'revoked' && (await reason(b, 'after-reset')) === 'revoked', 3000);
  });

  it('a log recreated with lower ids while the gate was not looking (a restore) is noticed', async () => {
    const prefix = 'restore:';
    const k = redisKeys(prefix);
    const g = await fleet.gate({ prefix });
    await brokerRevoke(prefix, 'first');
    await until(async () => (await reason(g, 'first')) === 'revoked', 2000);
    // Recreated with ids below the one the gate last read; no record above it ever comes.
    await redis.command('DEL', k.log);
    await redis.command('ZADD', k.live, '+inf', '{"jti":"restored"}');
    await redis.command('XADD', k.log, '1-0', 'entry', '{"jti":"restored"}');
    await until(async () => (await reason(g, 'restored')) === 'revoked', 4000);
    expect(await reason(g, 'first')).toBe('revoked');
  });

  it('a future-dated record does not stop the log from being trimmed', async () => {
    const prefix = 'future:';
    const k = redisKeys(prefix);
    const g = await fleet.gate({ prefix });
    await redis.command('XADD', k.log, '9999999999999-0', 'entry', '{"jti":"far"}');
    await redis.command('XADD', k.log, '*', 'entry', '{"jti":"after-far"}');
    await until(async () => Number(await redis.command('XLEN', k.log)) === 0, 5000);
    // The log is usable again: a revocation written now reaches the gate through it.
    await brokerRevoke(prefix, 'later');
    await until(async () => (await reason(g, 'later')) === 'revoked', 4000);
    expect(String((await redis.command('XREVRANGE', k.log, '+', '-', 'COUNT', '1'))[0][0])).not.toMatch(/^9999999999999-/);
  });
});

describe('a live set that comes back with fewer entries', () => {
  it('a reload that finds Redis emptied keeps every entry the gate held, says so, and writes them back', async () => {
    const prefix = 'emptied:';
    const k = redisKeys(prefix);
    const g = await fleet.gate({ prefix });
    await g.gate.fleet!.writer.write([{ kind: 'jti', jti: 'held-1', exp: undefined }, { kind: 'txn', txn: 'held-task', exp: now() + 600 }]);
    await redis.command('DEL', k.live);
    // Every connection dropped: the gate reconnects and follows on from the log, which still holds
    // everything after its last id; its count of the live set (every 5 s) finds it short and reloads.
    await redis.command('CLIENT', 'KILL', 'TYPE', 'normal');
    await until(() => logged(g.logs, 'held entries missing from redis').length > 0, 12_000);
    expect(await reason(g, 'held-1')).toBe('revoked');
    const line = logged(g.logs, 'held entries missing from redis')[0]!;
    expect(line).toMatchObject({ level: 'warn', held: 2, in_redis: 0, missing: 2 });
    expect(g.gate.readiness().ready).toBe(true);
    expect(g.gate.readiness().problems.join('\n')).toMatch(/2 entries this gate holds were missing from Redis/);
    expect(await g.metrics.registry.getSingleMetricAsString('jitgate_redis_entries_missing')).toMatch(/jitgate_redis_entries_missing 2/);
    // Written back, so a gate started now refuses them too.
    await until(async () => Number(await redis.command('ZCARD', k.live)) === 2, 3000);
    const late = await fleet.gate({ prefix });
    expect(await reason(late, 'held-1')).toBe('revoked');
    // The next count finds Redis holding them all: the problem and the gauge clear (a probe saw both stay for good
    // while following worked, since no load came to clear them).
    await until(async () => g.gate.readiness().problems.length === 0, 12_000);
    expect(await g.metrics.registry.getSingleMetricAsString('jitgate_redis_entries_missing')).toMatch(/jitgate_redis_entries_missing 0/);
    expect(logged(g.logs, 'redis holds every entry this gate holds again')).toHaveLength(1);
  }, 30_000);

  it('after Redis is killed and restarted empty, every running gate keeps refusing what it had revoked', async () => {
    const lone = await startRedis(['--appendonly', 'no']);
    fleet.defer(() => lone.remove());
    const built = await fleet.gate({ prefix: 'wiped:', redis: { url: lone.url } });
    await built.gate.fleet!.writer.write([{ kind: 'jti', jti: 'wiped-1', exp: undefined }]);
    await lone.kill();
    await rm(`${lone.dir}/appendonlydir`, { recursive: true, force: true });
    await lone.restart();
    await until(() => logged(built.logs, 'held entries missing from redis').length > 0, 8000);
    expect(await reason(built, 'wiped-1')).toBe('revoked');
    expect(built.gate.readiness().ready).toBe(true);
  });
});

describe('many gates writing back the same entries (the thirteenth round: 20 gates × 50,000 entries put a million records in the log)', () => {
  it('each entry is logged once, by whichever gate put it back; the others add nothing to the log', async () => {
    const k = redisKeys('writeback-once:');
    const entries = Array.from({ length: 3000 }, (_, i) => ({ kind: 'jti' as const, jti: `wb-${i}`, exp: undefined }));
    const clients = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const c = createClient({ url: redis.url });
        await c.connect();
        return c;
      }),
    );
    try {
      // Four gates at once, then one more later: every entry is in the set, and in the log once.
      const logged = await Promise.all(clients.map((c) => restoreLive(c as never, k, entries)));
      expect(Number(await redis.command('XLEN', k.log))).toBe(entries.length);
      expect(logged.reduce((a, b) => a + b, 0)).toBe(entries.length);
      expect(await restoreLive(clients[0] as never, k, entries)).toBe(0);
      expect(Number(await redis.command('ZCARD', k.live))).toBe(entries.length);
      expect(Number(await redis.command('XLEN', k.log))).toBe(entries.length);
      // A member one gate lacks is still added and logged by it.
      expect(await restoreLive(clients[1] as never, k, [...entries.slice(0, 10), { kind: 'jti', jti: 'wb-new', exp: undefined }])).toBe(1);
      expect(Number(await redis.command('XLEN', k.log))).toBe(entries.length + 1);
    } finally {
      for (const c of clients) c.destroy();
    }
  });
});

describe('expiry in Redis (SPEC §9: gone from Redis, change log included, within a few seconds of exp)', () => {
  it('a short-lived entry leaves the set and the log a few seconds after exp + tolerance; a long-lived one stays', async () => {
    const prefix = 'expiry:';
    const k = redisKeys(prefix);
    const g = await fleet.gate({ prefix }); // clock_tolerance 1s; its sweeper runs every second
    const exp = now() + 1;
    await g.gate.fleet!.writer.write([
      { kind: 'jti', jti: 'short-1', exp },
      { kind: 'txn', txn: 'short-task', exp },
      { kind: 'jti', jti: 'long-1', exp: now() + 600 },
    ]);
    const members = async (key: string, cmd: string[]): Promise<string> => JSON.stringify(await redis.command(...cmd, key, ...(cmd[0] === 'XRANGE' ? ['-', '+'] : ['0', '-1'])));
    expect(await members(k.log, ['XRANGE'])).toMatch(/short-1/);
    await until(async () => !(await members(k.live, ['ZRANGE'])).includes('short') && !(await members(k.log, ['XRANGE'])).includes('short'), 15_000);
    // exp + 1 s tolerance, then at most a sweep (~1 s) after a record is 3 s old: well within a few seconds.
    const late = Date.now() / 1000 - (exp + 1);
    expect(late).toBeLessThan(8);
    expect(await members(k.live, ['ZRANGE'])).toMatch(/long-1/);
    expect(await members(k.log, ['XRANGE'])).toMatch(/long-1/);
  });
});

/** A gate on `prefix` that revoked `jti` (no exp) through its own writer, and the prefix's keys. */
async function gateHolding(prefix: string, jti: string) {
  const g = await fleet.gate({ prefix });
  await g.gate.fleet!.writer.write([{ kind: 'jti', jti, exp: undefined }]);
  return { g, k: redisKeys(prefix) };
}

/** A redis-server of its own, no persistence, `noeviction` (as docs/fleet.md recommends); removed after the test. */
async function noevictionRedis(): Promise<RedisServer> {
  const lone = await startRedis(['--appendonly', 'no', '--maxmemory-policy', 'noeviction']);
  fleet.defer(() => lone.remove());
  return lone;
}

/** `maxmemory` set just below what `r` uses: it refuses every write that needs memory (OOM). */
async function fillUp(r: RedisServer): Promise<void> {
  const used = Number(/used_memory:(\d+)/.exec(String(await r.command('INFO', 'memory')))![1]);
  await r.command('CONFIG', 'SET', 'maxmemory', String(used - 100_000));
}

/** A gate started now on `prefix`: what it says of `jti`. */
const late = async (prefix: string, jti: string) => reason(await fleet.gate({ prefix }), jti);

describe('Redis loses entries without the log showing it (a review of 2026-12-06)', () => {
  it('the live set deleted, no reconnect: the running gate counts it short, writes its entries back, and a gate started later refuses them', async () => {
    const prefix = 'del-live:';
    const { g, k } = await gateHolding(prefix, 'kept-1');
    await redis.command('DEL', k.live);
    // Counted every 5 s against what the gate holds; the reload writes back.
    await until(async () => Number(await redis.command('ZCARD', k.live)) === 1, 8000);
    expect(logged(g.logs, 'redis revocation log cannot be followed').length).toBeGreaterThan(0);
    expect(await late(prefix, 'kept-1')).toBe('revoked');
  });

  it('FLUSHALL, then one new revocation before the gate looks (a log that looks unchanged): the older ones are written back', async () => {
    const prefix = 'flush-then-write:';
    const { g, k } = await gateHolding(prefix, 'old-1');
    await redis.command('DEL', k.live, k.log); // FLUSHALL, for this prefix alone (other tests share the server)
    await brokerRevoke(prefix, 'new-1');
    await until(async () => Number(await redis.command('ZCARD', k.live)) === 2, 8000);
    expect(await reason(g, 'old-1')).toBe('revoked');
    expect(await reason(g, 'new-1')).toBe('revoked');
    expect(await late(prefix, 'old-1')).toBe('revoked');
  });

  it('a live set holding only a malformed member: gates stay connected and ready, keep what they hold and write it back', async () => {
    const prefix = 'only-garbage:';
    const { g, k } = await gateHolding(prefix, 'kept-2');
    await redis.command('EVAL', `redis.call('DEL', KEYS[1], KEYS[2]); return redis.call('ZADD', KEYS[1], '+inf', 'garbage')`, '2', k.live, k.log);
    await until(async () => Number(await redis.command('ZCARD', k.live)) === 2, 8000);
    expect(await reason(g, 'kept-2')).toBe('revoked');
    expect(g.gate.readiness().ready).toBe(true);
    // It used to throw on the load and reconnect in a loop (412 reconnects in 33 s in the review).
    await new Promise((r) => setTimeout(r, 1500));
    expect(logged(g.logs, 'redis connection lost').length).toBe(0);
    const fresh = await fleet.gate({ prefix });
    expect(fresh.gate.readiness().ready).toBe(true);
    expect(await reason(fresh, 'kept-2')).toBe('revoked');
  }, 20_000);
});

describe('the second look at the same afternoon (a reviewer with the source)', () => {
  it('FLUSHALL, then duplicate members that make the count look whole: the data marker is gone, so the gate reloads and writes back', async () => {
    const prefix = 'flush-dup:';
    const { g, k } = await gateHolding(prefix, 'lost-a');
    await until(async () => (await redis.command('GET', k.epoch)) !== null, 3000);
    // FLUSHALL for this prefix, then one new jti written twice with two exps: two members, as many as the gate holds keys.
    await redis.command('DEL', k.live, k.log, k.epoch);
    const exp = now() + 600;
    await redis.command('EVAL', `redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]); redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3]); return redis.call('XADD', KEYS[2], '*', 'entry', ARGV[1])`, '2', k.live, k.log, JSON.stringify({ jti: 'dup', exp }), String(exp), JSON.stringify({ jti: 'dup', exp: exp + 60 }), String(exp + 60));
    await until(async () => ((await redis.command('ZRANGE', k.live, '0', '-1')) as string[]).some((m) => m.includes('lost-a')), 8000);
    expect(await late(prefix, 'lost-a')).toBe('revoked');
  });

  it('a gate started while entries were missing learns the write-back (it is logged, not only put back in the set)', async () => {
    const prefix = 'started-in-gap:';
    const { g, k } = await gateHolding(prefix, 'gap-1');
    await redis.command('DEL', k.live);
    const early = await fleet.gate({ prefix });
    expect(await reason(early, 'gap-1')).toBe('granted'); // loaded the set while the entry was missing
    await until(async () => (await reason(early, 'gap-1')) === 'revoked', 8000);
  });

  it('the marker turned into a hash (WRONGTYPE), then the set deleted: the count still sees it; the gate writes back', async () => {
    const prefix = 'marker-hash:';
    const { g, k } = await gateHolding(prefix, 'hash-1');
    await until(async () => (await redis.command('GET', k.epoch)) !== null, 3000);
    await redis.command('DEL', k.epoch);
    await redis.command('HSET', k.epoch, 'a', 'b');
    await redis.command('DEL', k.live);
    await until(async () => ((await redis.command('ZRANGE', k.live, '0', '-1')) as string[]).some((m) => m.includes('hash-1')), 12_000);
    expect(await late(prefix, 'hash-1')).toBe('revoked');
  }, 20_000);

  it('Redis refusing the write-back (maxmemory): one reload, then writes only, every 5 s, until Redis takes them', async () => {
    const lone = await noevictionRedis();
    const prefix = 'refused-write-back:';
    const k = redisKeys(prefix);
    const g = await fleet.gate({ prefix, redis: { url: lone.url } });
    await g.gate.fleet!.writer.write([{ kind: 'jti', jti: 'rw-1', exp: undefined }]);
    await lone.command('DEL', k.live);
    await fillUp(lone);
    await until(() => logged(g.logs, 'held entries missing from redis').length > 0, 8000);
    await new Promise((r) => setTimeout(r, 11_000)); // two more 5 s checks
    expect(logged(g.logs, 'held entries missing from redis')).toHaveLength(1);
    expect(await reason(g, 'rw-1')).toBe('revoked');
    expect(g.gate.readiness().problems.join('\n')).toMatch(/not written back \(OOM/);
    // Redis takes writes again: the entry is back within a check (it rested 60 s before, and a gate started
    // meanwhile answered 200 for it for up to a minute: a probe), and a gate started now refuses it.
    await lone.command('CONFIG', 'SET', 'maxmemory', '0');
    const tookAt = Date.now();
    await until(() => logged(g.logs, 'held entries Redis had refused are written back now').length > 0, 7000);
    expect(Date.now() - tookAt).toBeLessThan(7000);
    expect(logged(g.logs, 'held entries Redis had refused are written back now')[0]).toMatchObject({ level: 'warn', entries: 1 });
    expect(((await lone.command('ZRANGE', k.live, '0', '-1')) as string[]).some((m) => m.includes('rw-1'))).toBe(true);
    expect(await reason(await fleet.gate({ prefix, redis: { url: lone.url } }), 'rw-1')).toBe('revoked');
    expect(logged(g.logs, 'held entries missing from redis')).toHaveLength(1);
    await until(async () => g.gate.readiness().problems.length === 0, 12_000);
  }, 45_000);

  it('a Redis at maxmemory (noeviction): a reload still reads the set, so gates keep syncing and one started then gets ready', async () => {
    const lone = await noevictionRedis();
    const prefix = 'full-reload:';
    const g = await fleet.gate({ prefix, redis: { url: lone.url }, max_stale: '3s' });
    await g.gate.fleet!.writer.write([{ kind: 'jti', jti: 'full-1', exp: undefined }]);
    await fillUp(lone);
    await expect(lone.command('SET', 'probe', 'x')).rejects.toThrow(/OOM/);
    // A revocation Redis refuses is counted where operators alert (docs/fleet.md; a probe found it only logged).
    const writeErrors = async () => (await g.metrics.registry.getSingleMetric('jitgate_redis_errors_total')!.get()).values.find((v) => v.labels.op === 'write')?.value ?? 0;
    await expect(g.gate.fleet!.writer.write([{ kind: 'jti', jti: 'refused', exp: undefined }])).rejects.toThrow(/OOM/);
    expect(await writeErrors()).toBe(1);
    // Every connection dropped: the gate reconnects and reloads (a MULTI, even of reads, is refused there).
    await lone.command('CLIENT', 'KILL', 'TYPE', 'normal');
    await new Promise((r) => setTimeout(r, 4000)); // past max_stale: a gate that could not reload would answer 503
    expect(await reason(g, 'full-1')).toBe('revoked');
    expect(await reason(g, 'other')).toBe('granted');
    const fresh = await fleet.gate({ prefix, redis: { url: lone.url } });
    expect(await reason(fresh, 'full-1')).toBe('revoked');
  }, 20_000);
});

describe('the sweep on a Redis at maxmemory (noeviction, as docs/fleet.md recommends)', () => {
  it('still deletes expired entries, which is what frees Redis (a MULTI holding writes is refused there)', async () => {
    const lone = await noevictionRedis();
    const prefix = 'full:';
    const k = redisKeys(prefix);
    const g = await fleet.gate({ prefix, redis: { url: lone.url } });
    const exp = now() + 2;
    for (let i = 0; i < 4; i++) await g.gate.fleet!.writer.write(Array.from({ length: 500 }, (_, j) => ({ kind: 'jti' as const, jti: `full-${i}-${j}-${'x'.repeat(40)}`, exp })));
    expect(Number(await lone.command('ZCARD', k.live))).toBe(2000);
    await fillUp(lone);
    await expect(lone.command('SET', 'probe', 'x')).rejects.toThrow(/OOM/);
    // exp + the test gates' 1 s tolerance, then the next sweep.
    await until(async () => Number(await lone.command('ZCARD', k.live)) === 0, 10_000);
  }, 20_000);
});
