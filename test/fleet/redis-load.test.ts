/**
 * Loading the live set in pieces (SPEC §9, docs/fleet.md "Loading a large set"): a reload of a large
 * set reads it with ZSCAN, the event loop free between pieces, so the gate answers meanwhile with the
 * list it had plus the records logged since; and members deleted or re-scored while it runs make it
 * skip none of the others (re-probes of earlier, ranked readers found thousands skipped).
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
  await until(async () => (await followerCommand()) === 'zscan', 5_000, 'the reload reading the set');
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

  it("8,000 entries deleted during a load (the sweepers' expired ones) make it skip none of the rest", async () => {
    // Below the top four pages (score +inf), two pages this gate has never held, deleted while the reload reads the top.
    const soon = now() + 3_600;
    const { g, k } = await reloading('bottom:', 'keep', 16_000, () => addEntries(redisKeys('bottom:').live, 'low', 8_000, soon));
    expect(Number(await fleet.redis.command('ZREMRANGEBYSCORE', k.live, '-inf', String(soon)))).toBe(8_000);

    await until(() => loads(g).length === 2, 20_000, 'the reload completing');
    // Every entry present throughout came from Redis: none had to be restored from what the gate held
    // (the deleted ones may or may not have been read before they went).
    expect(Number(loads(g)[1]!.in_redis)).toBeGreaterThanOrEqual(16_001);
    expect(logged(g.logs, 'held entries missing from redis')).toHaveLength(0);
  }, 40_000);

  it("500 members re-scored during a load (a broker's ZADD) make it skip none of the rest", async () => {
    const { g, k } = await reloading('moved:', 'keep', 16_000);
    // Read in the first piece or not, each one moves 500 ranks: what a reader by rank skipped.
    const top = (await fleet.redis.command('ZRANGE', k.live, '-500', '-1')) as string[];
    const low = String(now() + 3_600);
    await fleet.redis.command('ZADD', k.live, ...top.flatMap((m) => [low, m]));

    await until(() => loads(g).length === 2, 20_000, 'the reload completing');
    expect(loads(g)[1]).toMatchObject({ in_redis: 16_001 });
    expect(logged(g.logs, 'held entries missing from redis')).toHaveLength(0);
  }, 40_000);

  it('a log deleted and recreated during a fresh gate load, with the record of a revocation in between: the revocation is enforced (loaded, or the recreated log noticed)', async () => {
    const prefix = 'recreated:';
    const k = redisKeys(prefix);
    await addEntries(k.live, 'keep', 16_000);
    const logged1 = encodeEntry({ kind: 'jti', jti: 'logged', exp: undefined });
    await fleet.redis.command('ZADD', k.live, '+inf', logged1);
    await fleet.redis.command('XADD', k.log, '*', 'entry', logged1); // the log exists, one record added

    relay.slow(150);
    const starting = fleet.gate({ prefix, redis: { url: relay.url } });
    await until(async () => (await followerCommand()) === 'zscan', 5_000, 'the load reading the set');
    // Written the documented way (set and log), the log deleted in the same transaction, so no read of
    // it ever sees the record; the scan may or may not return a member added during it.
    const r1 = encodeEntry({ kind: 'jti', jti: 'r1', exp: undefined });
    const client = createClient({ url: fleet.redis.url });
    await client.connect();
    try {
      await client.multi().addCommand(['ZADD', k.live, '+inf', r1]).addCommand(['XADD', k.log, '*', 'entry', r1]).addCommand(['DEL', k.log]).exec();
    } finally {
      client.destroy();
    }
    // The next write, still during the load, makes a new log: fewer records ever added than the gate
    // will have seen (the first log's one, and this one read by the load), so a reset
    // (redis-stream-ids.test.ts has the rule), if the scan did not return r1.
    const r2 = encodeEntry({ kind: 'jti', jti: 'r2', exp: undefined });
    await fleet.redis.command('ZADD', k.live, '+inf', r2);
    await fleet.redis.command('XADD', k.log, '*', 'entry', r2);
    const g = await starting;
    relay.slow(0);
    await until(async () => (await reason(g, 'r1')) === 'revoked', 10_000, 'r1 loaded again');
    expect(await reason(g, 'r2')).toBe('revoked');
  }, 40_000);

  it('a slow link (every answer 1.2 s late) still completes a load: the reads of the log during it wait as long as a page', async () => {
    const prefix = 'slow:';
    const k = redisKeys(prefix);
    await addEntries(k.live, 'keep', 12_000); // four pages, a read of the log queued behind each after the first
    relay.slow(1_200);
    const g = await fleet.gate({ prefix, redis: { url: relay.url } });
    relay.slow(0);
    // The command connection sat idle through the load, and its heartbeat found every answer later than
    // command_timeout: reported lost (truthfully) and replaced once the link is fast again.
    await until(() => g.gate.readiness().ready, 5_000, 'ready once the link is fast again');
    expect(loads(g)[0]).toMatchObject({ in_redis: 12_000 });
    expect(await reason(g, 'keep-11999')).toBe('revoked');
  }, 40_000);

  it('a fresh gate loading while a broker deletes other members and re-scores the rest, both ways, all the time: every member present throughout is loaded, every revocation logged meanwhile enforced', async () => {
    const prefix = 'churn:';
    const k = redisKeys(prefix);
    await addEntries(k.live, 'keep', 16_000);
    const junk: string[] = [];
    for (let i = 0; i < 8_000; i++) junk.push(`not json ${i}`); // malformed members an operator cleans up
    await fleet.redis.command('ZADD', k.live, ...junk.flatMap((m) => [String(now() + 7_200), m]));
    const keep = (i: number): string => encodeEntry({ kind: 'jti', jti: `keep-${i}`, exp: undefined });

    relay.slow(100);
    const starting = fleet.gate({ prefix, redis: { url: relay.url } });
    await until(async () => (await followerCommand()) === 'zscan', 5_000, 'the load reading the set');
    let stop = false;
    const written: string[] = [];
    const broker = (async () => {
      for (let round = 0; !stop; round++) {
        const gone = junk.splice(0, 200);
        if (gone.length > 0) await fleet.redis.command('ZREM', k.live, ...gone);
        // 300 members moved down, 300 up (a bare ZADD with another score, as a careless broker does).
        const moved: string[] = [];
        for (let i = 0; i < 300; i++) moved.push(String(round % 2 === 0 ? now() + 3_600 + i : 1e12 + i), keep((round * 300 + i) % 16_000));
        await fleet.redis.command('ZADD', k.live, ...moved);
        const jti = `during-${round}`;
        written.push(jti);
        await fleet.redis.command('ZADD', k.live, '+inf', encodeEntry({ kind: 'jti', jti, exp: undefined }));
        await fleet.redis.command('XADD', k.log, '*', 'entry', encodeEntry({ kind: 'jti', jti, exp: undefined }));
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
    let g: BuiltGate;
    try {
      g = await starting;
    } finally {
      stop = true;
      await broker;
    }
    relay.slow(0);
    const at = now();
    for (let i = 0; i < 16_000; i++) expect(g.gate.revocation.isRevoked(`keep-${i}`, 'x', at, undefined), `keep-${i}`).toBe(true);
    expect(written.length).toBeGreaterThan(3);
    await until(() => written.every((jti) => g.gate.revocation.isRevoked(jti, 'x', at, undefined)), 3_000, 'every revocation written during the load');
  }, 60_000);

  /**
   * A gate whose follower is held in the relay while `victim` is written and its log record trimmed
   * (what the sweepers do after 30 s), then `fill` written after it: once the held read is let go, it
   * returns fill, past the gap. Returns with the read still held.
   */
  async function trimmedWhileHeld(prefix: string): Promise<BuiltGate> {
    const k = redisKeys(prefix);
    await addEntries(k.live, 'keep', 16_000);
    const g = await fleet.gate({ prefix, redis: { url: relay.url } });
    await g.gate.fleet!.writer.write([{ kind: 'jti', jti: 'logged', exp: undefined }]);
    await until(async () => (await followerCommand()) === 'xread', 5_000, 'the follower following');
    relay.holdFrom('XREAD'); // the follower's next read waits in the relay
    // The read under way (BLOCK 1000) returns and the next one is held: only then is the follower blind.
    await until(() => relay.holding() > 0, 5_000, "the follower's next read held");
    for (const [jti, trim] of [['victim', true], ['fill', false]] as const) {
      const e = encodeEntry({ kind: 'jti', jti, exp: undefined });
      await fleet.redis.command('ZADD', k.live, '+inf', e);
      await fleet.redis.command('XADD', k.log, '*', 'entry', e);
      if (trim) await fleet.redis.command('XTRIM', k.log, 'MAXLEN', '0');
    }
    expect(await reason(g, 'victim')).toBe('granted'); // not read: the hold worked
    return g;
  }

  it('a load started for records trimmed unread, cut by a lost connection: the next connection loads again, it does not follow on past the gap', async () => {
    const g = await trimmedWhileHeld('owed:');
    relay.slow(150);
    relay.release(); // the held read returns fill, past the gap: the gate notices and reloads, slowly
    await until(async () => (await followerCommand()) === 'zscan', 5_000, 'the reload reading the set');
    await relay.cut(); // the load dies with its connection
    await relay.restore();
    relay.slow(0);
    await until(async () => (await reason(g, 'victim')) === 'revoked', 15_000, 'the trimmed revocation loaded by the next connection');
  }, 40_000);

  it('the check for a gap after a read lost with its connection: the next connection loads again, it does not follow on past the gap', async () => {
    const g = await trimmedWhileHeld('unchecked:');
    relay.release(); // the held read returns fill, past the gap…
    relay.holdFrom('XINFO'); // …and the check that would see the gap never answers (nor the next connection's, for a while)
    await new Promise((r) => setTimeout(r, 1_500)); // past the check's 1 s deadline: the connection is dropped
    relay.release();
    await until(async () => (await reason(g, 'victim')) === 'revoked', 15_000, 'the trimmed revocation loaded by the next connection');
  }, 40_000);

  it('records trimmed before a load read them from the log (its reads fell behind): the load is done again', async () => {
    const { g, k } = await reloading('load-gap:', 'keep', 16_000);
    await new Promise((r) => setTimeout(r, 400)); // the load's first read of the log has run
    for (const [jti, trim] of [['trimmed', true], ['after', false]] as const) {
      const e = encodeEntry({ kind: 'jti', jti, exp: undefined });
      await fleet.redis.command('ZADD', k.live, '+inf', e);
      await fleet.redis.command('XADD', k.log, '*', 'entry', e);
      if (trim) await fleet.redis.command('XTRIM', k.log, 'MAXLEN', '0');
    }
    await until(() => logged(g.logs, 'redis').some((l) => /trimmed before this gate read them, during the load/.test(String(l.err ?? l.error ?? ''))), 10_000, 'the gap seen by the load');
    relay.slow(0);
    await until(() => loads(g).length === 2, 20_000, 'a load completing');
    for (const jti of ['trimmed', 'after', 'keep-0']) expect(await reason(g, jti)).toBe('revoked');
  }, 40_000);
});
