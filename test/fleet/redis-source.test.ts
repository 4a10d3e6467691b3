/**
 * The Redis revocation source and writer against a real redis-server (SPEC §9): a gate built by
 * buildGate (production wiring) loads the live set before it is ready and follows the change log;
 * malformed members and records written by a broker are skipped and logged, never emptying the
 * list; WRONGTYPE fails closed; entries with exp leave Redis (set and log) within seconds of
 * exp + clock_tolerance; startup errors name the key at fault.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeEntry, LOG_FIELD, LOG_RETENTION_MS, redisKeys } from '../../src/fleet/redis-layout.ts';
import { RedisRevocationSource, type RedisSourceEvents } from '../../src/fleet/redis-source.ts';
import { logged, type BuiltGate } from '../fixtures/built-gate.ts';
import { bearer, input } from '../fixtures/gate.ts';
import { tempDir, type TestKey } from '../fixtures/keys.ts';
import { startRedis, type RedisServer } from '../fixtures/redis.ts';
import { startRedisGates, type RedisGates } from '../fixtures/redis-gates.ts';
import { sign } from '../fixtures/tokens.ts';
import { rm } from 'node:fs/promises';

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
const token = (claims: Record<string, unknown> = {}): Promise<string> => sign(key, { iat: now(), exp: now() + 300, ...claims });
async function reason(g: BuiltGate, t: string): Promise<string> {
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

describe('Redis revocation source', () => {
  it('loads every live entry before it is ready, then follows changes written by another gate', async () => {
    const prefix = 'load:';
    const k = redisKeys(prefix);
    await redis.command('ZADD', k.live, '+inf', encodeEntry({ kind: 'jti', jti: 'before-start', exp: undefined }));
    const g = await fleet.gate({ prefix });
    expect(g.gate.readiness().ready).toBe(true);
    expect(await reason(g, await token({ jti: 'before-start' }))).toBe('revoked');
    expect(await reason(g, await token({ jti: 'later' }))).toBe('granted');

    await g.gate.fleet!.writer.write([{ kind: 'jti', jti: 'later', exp: undefined }, { kind: 'sub', sub: 'spiffe://prod/ci-deployer', before: 1, exp: undefined }]);
    const ms = await until(async () => (await reason(g, await token({ jti: 'later' }))) === 'revoked', 1000);
    expect(ms).toBeLessThan(1000);
    expect(Number(await redis.command('ZCARD', k.live))).toBe(3);
  });

  it('skips malformed members and log records written by a broker, logs them, and keeps the valid entries', async () => {
    const prefix = 'bad:';
    const k = redisKeys(prefix);
    await redis.command('ZADD', k.live, '+inf', '{"jti":"good-1"}', '+inf', 'not json', '+inf', '{"jti":""}', '+inf', '{"sub":"x"}');
    const g = await fleet.gate({ prefix });
    expect(await reason(g, await token({ jti: 'good-1' }))).toBe('revoked');
    expect(logged(g.logs, 'redis revocation member skipped').length).toBe(3);

    await redis.command('XADD', k.log, '*', 'entry', '{"txn":42}');
    await redis.command('XADD', k.log, '*', 'other', '{"jti":"x"}');
    await redis.command('XADD', k.log, '*', 'entry', 'Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl');
    // A token with a 43-character kid: no dot within the 60 characters an excerpt keeps.
    await redis.command('XADD', k.log, '*', 'entry', `eyJhbGciOiJFUzI1NiIsImtpZCI6IjZTbHc4UTFubzQzM0NYdXkyakFFUVo0In0.eyJzdWIiOiJ4In0.${'s'.repeat(86)}`);
    await redis.command('XADD', k.log, '*', 'entry', '{"jti":"good-2"}');
    await until(async () => (await reason(g, await token({ jti: 'good-2' }))) === 'revoked', 1000);
    const skipped = logged(g.logs, 'redis revocation log record skipped').map((l) => String(l.problem));
    expect(skipped.length).toBe(4);
    // A short JSON-escaped excerpt, so the operator can find the record; never a whole token.
    expect(skipped[0]).toMatch(/^log record \d+-\d+ "\{\\"txn\\":42\}": "txn" must be a non-empty string$/);
    expect(skipped[1]).toMatch(/^log record \d+-\d+: no "entry" field$/);
    expect(skipped[2]).toMatch(/^log record \d+-\d+ "Bearer eyJ…": not valid JSON$/);
    expect(skipped[3]).toMatch(/^log record \d+-\d+ "eyJ…": not valid JSON$/);
    expect(logged(g.logs, 'redis revocation member skipped').map((l) => l.problem)).toContain('member "not json": not valid JSON');
    expect(await reason(g, await token({ jti: 'good-1' }))).toBe('revoked');
    expect(g.gate.readiness().ready).toBe(true);
  });

  it('a live set holding only malformed members keeps the list in use (never empties it)', async () => {
    const prefix = 'allbad:';
    const k = redisKeys(prefix);
    await redis.command('ZADD', k.live, '+inf', '{"jti":"kept"}');
    const g = await fleet.gate({ prefix });
    expect(await reason(g, await token({ jti: 'kept' }))).toBe('revoked');
    await redis.command('DEL', k.live);
    await redis.command('ZADD', k.live, '+inf', 'garbage');
    // A resync happens on every reconnect: force one by killing the follower's connection.
    await redis.command('CLIENT', 'KILL', 'SKIPME', 'no', 'TYPE', 'normal');
    await until(() => logged(g.logs, 'redis revocation member skipped (malformed)').length > 0, 5000);
    expect(await reason(g, await token({ jti: 'kept' }))).toBe('revoked');
    // And what it holds is written back beside the garbage (redis-reset.test.ts has the fleet view).
    await until(async () => Number(await redis.command('ZCARD', k.live)) === 2, 5000);
  });

  it('a WRONGTYPE reply fails closed: 503 revocation_stale after max_stale, /readyz names Redis', async () => {
    const prefix = 'wrongtype:';
    const k = redisKeys(prefix);
    await redis.command('ZADD', k.live, '+inf', '{"jti":"r1"}');
    const g = await fleet.gate({ prefix, max_stale: '3s' });
    const t = await token({ jti: 'fine' });
    expect(await reason(g, t)).toBe('granted');
    await redis.command('SET', k.log, 'someone else wrote a string here');
    await until(async () => (await reason(g, t)) === 'revocation_stale', 8000);
    const r = g.gate.readiness();
    expect(r.ready).toBe(false);
    expect(r.problems.join('\n')).toMatch(/revocation source redis:redis:\/\/127\.0\.0\.1:\d+\/0#wrongtype: has not synced/);
    await until(() => g.logs.some((l) => l.component === 'revocation' && String(l.err ?? '').startsWith('WRONGTYPE')), 5000);
    expect(logged(g.logs, 'redis operation failed').some((l) => l.op === 'sweep' && String(l.err).startsWith('WRONGTYPE'))).toBe(true);
    // A write into the broken layout is refused, not acknowledged.
    await expect(g.gate.fleet!.writer.write([{ kind: 'jti', jti: 'x', exp: undefined }])).rejects.toThrow(/WRONGTYPE/);
    // Repaired: recovers by itself.
    await redis.command('DEL', k.log);
    await until(async () => (await reason(g, t)) === 'granted', 8000);
    expect(await reason(g, await token({ jti: 'r1' }))).toBe('revoked');
  });

  it('entries with exp are enforced until exp + clock_tolerance, then gone from the set at once and from the log within its retention', async () => {
    const prefix = 'exp:';
    const k = redisKeys(prefix);
    const g = await fleet.gate({ prefix });
    // Far enough ahead that the write, a signature and a decision fit before it on a loaded machine.
    const exp = now() + 3;
    await g.gate.fleet!.writer.write([{ kind: 'jti', jti: 'short', exp }, { kind: 'jti', jti: 'forever', exp: undefined }]);
    await until(async () => (await reason(g, await token({ jti: 'short' }))) === 'revoked', 1000);
    expect(Number(await redis.command('XLEN', k.log))).toBe(2);
    // exp + 1s tolerance, then the sweep (every ~1 s); the log keeps records LOG_RETENTION_MS (30 s).
    await until(async () => Number(await redis.command('ZCARD', k.live)) === 1, 8000);
    expect(Date.now() / 1000).toBeGreaterThan(exp + 1);
    await until(async () => Number(await redis.command('XLEN', k.log)) === 0, LOG_RETENTION_MS + 8000);
    expect(await redis.command('ZRANGE', k.live, '0', '-1')).toEqual(['{"jti":"forever"}']);
    // The gauge follows the gate's own index, which prunes on its timer: it went 2 → 1 (it stayed at 2 before).
    const entries = async () => (await g.metrics.registry.getSingleMetric('jitgate_revocation_entries')!.get()).values.find((v) => String(v.labels.source).startsWith('redis:'))?.value;
    await until(async () => (await entries()) === 1, 8000);
  }, LOG_RETENTION_MS + 30_000);
});

describe('Redis startup errors name the key', () => {
  it('unreachable: not a start-up error (it may come back) — the gate starts not ready, and its log names redis.url', async () => {
    const g = await fleet.gate({ redis: { url: 'redis://127.0.0.1:1/0', connect_timeout: '300ms' } });
    expect(g.gate.readiness()).toMatchObject({ ready: false, problems: [expect.stringMatching(/^revocation source redis:redis:\/\/127\.0\.0\.1:1\/0#.* has not synced within max_stale/)] });
    expect(logged(g.logs, 'redis unreachable at start; retrying in the background')[0]).toMatchObject({ level: 'error', err: expect.stringMatching(/^redis\.url redis:\/\/127\.0\.0\.1:1\/0: Redis unreachable/) });
  });

  it('wrong password: redis.password_file', async () => {
    const secured = await startRedis(['--requirepass', 'right-password']);
    fleet.defer(() => secured.remove());
    const dir = await tempDir();
    fleet.defer(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'redis-password');
    await writeFile(file, 'wrong-password\n');
    await expect(fleet.gate({ redis: { url: secured.url, password_file: file } })).rejects.toThrow(/^redis\.password_file: Redis at .* refused the credentials/);
    await writeFile(file, 'right-password\n');
    const g = await fleet.gate({ redis: { url: secured.url, password_file: file } });
    expect(g.gate.readiness().ready).toBe(true);
  });

  it('no password where one is required: the URL credentials', async () => {
    const secured = await startRedis(['--requirepass', 'right-password']);
    fleet.defer(() => secured.remove());
    await expect(fleet.gate({ redis: { url: secured.url } })).rejects.toThrow(/^redis\.url \(user:password\): Redis at .* refused the credentials \(NOAUTH/);
  });
});

/** A revocation follower alone (no gate, so no sweeper trims what a test writes). */
async function follower(prefix: string, events: RedisSourceEvents): Promise<RedisRevocationSource> {
  return new RedisRevocationSource({ url: redis.url, connectTimeoutMs: 2_000, commandTimeoutMs: 1_000, keys: redisKeys(prefix), prefix, maxStaleMs: 30_000, toleranceSec: 5, events });
}

describe('a follower that falls behind the change log', () => {
  it('resyncs from the sorted set when a full batch is already older than the follow gap, so records the sweepers trim are not lost (a re-probe)', async () => {
    const prefix = 'behind:';
    const k = redisKeys(prefix);
    const t0 = Date.now() - 60_000;
    const entry = (i: number) => encodeEntry({ kind: 'jti', jti: `behind-${i}`, exp: undefined });
    await redis.command('XADD', k.log, `${t0}-0`, LOG_FIELD, entry(0));
    await redis.command('ZADD', k.live, '+inf', entry(0));
    const resets: string[] = [];
    let resyncs = 0;
    const source = await follower(prefix, { reset: (why) => resets.push(why), resync: () => void resyncs++ });
    try {
      await source.start();
      expect(resyncs).toBe(1);
      // 1,500 records dated 40 s ago arrive in the log (and the set): the first batch of 1,000 read
      // is older than the follow gap, so this follower is behind what the sweepers trim.
      // All at once (one script), as a burst the follower meets in full batches.
      expect(entry(7)).toBe('{"jti":"behind-7"}');
      await redis.command(
        'EVAL',
        "for i = 1, 1500 do local e = '{\"jti\":\"behind-' .. i .. '\"}'; redis.call('ZADD', KEYS[2], '+inf', e); redis.call('XADD', KEYS[1], ARGV[1] .. '-' .. i, ARGV[2], e) end",
        '2',
        k.log,
        k.live,
        String(t0 + 20_000),
        LOG_FIELD,
      );
      await until(() => resets.length > 0 && resyncs >= 2, 5_000);
      expect(resets[0]).toMatch(/behind the change log, which is trimmed to 30000 ms/);
      await until(() => source.index.isRevoked('behind-1500', 's', 0, undefined), 5_000);
      expect(source.index.size).toBe(1_501);
    } finally {
      source.stop();
    }
  });

  it('resyncs when records after where a read started were trimmed before it: XREAD skips over such a gap silently (a re-probe)', async () => {
    const prefix = 'gap:';
    const k = redisKeys(prefix);
    const resets: string[] = [];
    const source = await follower(prefix, { reset: (why) => resets.push(why) });
    try {
      await redis.command('XADD', k.log, '*', LOG_FIELD, encodeEntry({ kind: 'jti', jti: 'gap-0', exp: undefined }));
      await source.start();
      // Three records and their members at once; the first two trimmed before the follower can read
      // them (a sweeper while this gate was reloading or behind): it reads only the third.
      await redis.command(
        'EVAL',
        "local ids = {}; for i = 1, 3 do local e = '{\"jti\":\"gap-' .. i .. '\"}'; redis.call('ZADD', KEYS[2], '+inf', e); ids[i] = redis.call('XADD', KEYS[1], '*', ARGV[1], e) end; redis.call('XTRIM', KEYS[1], 'MINID', ids[3]); return ids[3]",
        '2',
        k.log,
        k.live,
        LOG_FIELD,
      );
      await until(() => resets.length > 0, 5_000);
      expect(resets[0]).toMatch(/trimmed before this gate read them/);
      await until(() => source.index.isRevoked('gap-1', 's', 0, undefined) && source.index.isRevoked('gap-2', 's', 0, undefined), 5_000);
    } finally {
      source.stop();
    }
  });

  it('a new connection follows on from the last id read when the log still holds everything after it: no reload (a re-probe)', async () => {
    const prefix = 'follow-on:';
    const k = redisKeys(prefix);
    let resyncs = 0;
    const source = await follower(prefix, { resync: () => void resyncs++ });
    try {
      await redis.command('XADD', k.log, '*', LOG_FIELD, encodeEntry({ kind: 'jti', jti: 'on-0', exp: undefined }));
      await source.start();
      expect(resyncs).toBe(1);
      await redis.command('CLIENT', 'KILL', 'TYPE', 'normal'); // every connection cut, the follower's too
      const e = encodeEntry({ kind: 'jti', jti: 'on-1', exp: undefined });
      await redis.command('ZADD', k.live, '+inf', e);
      await redis.command('XADD', k.log, '*', LOG_FIELD, e);
      await until(() => source.index.isRevoked('on-1', 's', 0, undefined), 5_000);
      expect(resyncs).toBe(1);
    } finally {
      source.stop();
    }
  });
});
