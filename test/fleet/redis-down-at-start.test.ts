/**
 * A gate started while Redis is down (SPEC §9: "recovers by itself when Redis returns"; "loads every
 * live entry from Redis before it reports ready"). It starts, is not ready and answers 503 while it
 * holds no list; once Redis answers it loads, reports ready, refuses what was revoked before it started
 * and hands out the fleet's DPoP nonces. Before 2026-12-07 it exited 1, leaving the recovery to an
 * orchestrator's restart backoff. Real gate processes (one of them a cluster) on a real redis-server
 * killed and restarted from its AOF.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisKeys } from '../../src/fleet/redis-layout.ts';
import { startDpopFleet, type DpopFleet } from '../fixtures/dpop-fleet.ts';
import { send, tokenNow, type GateProcess } from '../fixtures/servers.ts';

const PREFIX = 'down:';

let fleet: DpopFleet;

beforeAll(async () => {
  fleet = await startDpopFleet();
}, 60_000);
afterAll(async () => {
  await fleet?.remove();
});

/** A gate following the fleet's Redis on PREFIX for revocations too; `extra` laid over its config. */
const startGate = (name: string, extra: Record<string, unknown> = {}): Promise<GateProcess> =>
  fleet.start(name, () => ({ revocation: { redis: true, max_stale: '30s' }, redis: { url: fleet.redis.url, key_prefix: PREFIX, connect_timeout: '300ms' }, ...extra }));

async function ready(g: GateProcess): Promise<{ status: number; problems: string[] }> {
  const r = await send(g.adminUrl, '/readyz');
  return { status: r.status, problems: (JSON.parse(r.text) as { problems?: string[] }).problems ?? [] };
}

async function until(check: () => Promise<boolean>, ms: number): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Status and reason of one bearer request. */
async function bearerCall(g: GateProcess, token: string): Promise<[number, string | undefined]> {
  const r = await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } });
  return [r.status, r.status === 200 ? undefined : (JSON.parse(r.text) as { reason: string }).reason];
}

const dpopCall = (g: GateProcess, token: string, jti: string, nonce?: string) => fleet.call(g, token, jti, nonce);

describe('Redis down when a gate starts', () => {
  it('the gate starts not ready and fails closed; when Redis returns it loads, is ready, and its nonces are the fleet’s', async () => {
    // The fleet before the outage: one gate (it writes the nonce key) and one revocation.
    const k = redisKeys(PREFIX);
    const before = await startGate('before');
    expect((await bearerCall(before, await tokenNow(fleet.keys, { jti: 'ok-before' })))[0]).toBe(200);
    await fleet.redis.command('EVAL', "redis.call('ZADD', KEYS[1], '+inf', ARGV[1]); return redis.call('XADD', KEYS[2], '*', 'entry', ARGV[1])", '2', k.live, k.log, '{"jti":"revoked-early"}');
    await until(async () => (await bearerCall(before, await tokenNow(fleet.keys, { jti: 'revoked-early' })))[1] === 'revoked', 3000);
    // Another prefix whose nonce key is damaged: found only once Redis is back.
    await fleet.redis.command('SET', 'damaged:dpop-nonce-key', 'not-a-key');
    await fleet.redis.kill();

    const [late, cluster, damaged] = await Promise.all([
      startGate('late'),
      startGate('late-cluster', { workers: 2 }),
      startGate('late-damaged', { redis: { url: fleet.redis.url, key_prefix: 'damaged:', connect_timeout: '300ms' } }),
    ]);
    for (const g of [late, cluster]) {
      const r = await ready(g);
      expect(r.status).toBe(503);
      expect(r.problems.join('\n')).toMatch(/revocation source redis:.*down:.* has not synced within max_stale/);
      // A fresh token is refused (503), as for a running gate past max_stale: nothing revoked can slip through.
      expect(await bearerCall(g, await tokenNow(fleet.keys, { jti: 'fresh-while-down' }))).toEqual([503, 'revocation_stale']);
    }
    await until(async () => late.lines.some((l) => l.level === 'error' && /redis unreachable at start; retrying in the background/.test(l.msg)), 5000);
    expect((await ready(late)).problems.join('\n')).toMatch(/dpop\.use_nonce: the fleet's DPoP nonce key has not been read from redis/);

    await fleet.redis.restart();
    for (const g of [late, cluster]) await until(async () => (await ready(g)).status === 200, 10_000);
    expect(await bearerCall(late, await tokenNow(fleet.keys, { jti: 'revoked-early' }))).toEqual([401, 'revoked']);
    expect(await bearerCall(cluster, await tokenNow(fleet.keys, { jti: 'revoked-early' }))).toEqual([401, 'revoked']);
    expect((await bearerCall(late, await tokenNow(fleet.keys, { jti: 'fresh-after' })))[0]).toBe(200);
    // Logged before /readyz could say 200, but written by the gate's log destination in its own time.
    await until(async () => late.lines.some((l) => /the fleet key was read from redis/.test(l.msg)), 5000);

    // The late gate's nonces are the fleet's: one handed out by the gate started before the outage passes there.
    await until(async () => (await ready(before)).status === 200, 10_000);
    const token = await tokenNow(fleet.keys, { jti: 'nonce-bound', cnf: { jkt: fleet.jkt } });
    const asked = await dpopCall(before, token, 'p-1');
    expect([asked.status, asked.reason]).toEqual([401, 'dpop_nonce_required']);
    expect(await dpopCall(late, token, 'p-2', asked.nonce)).toMatchObject({ status: 200 });
    // And the other way: the late gate hands out the same nonce.
    expect((await dpopCall(late, token, 'p-3')).nonce).toBe(asked.nonce);

    // A damaged key read after start is not an exit: the gate stays up, not ready, and says what to do.
    await until(async () => /the Redis key damaged:dpop-nonce-key does not hold a 32-byte base64url DPoP nonce key/.test((await ready(damaged)).problems.join('\n')), 10_000);
    expect((await ready(damaged)).status).toBe(503);
    // Deleted as the message says: read again on its own (the connection stayed up, so no reconnect would ask).
    await fleet.redis.command('DEL', 'damaged:dpop-nonce-key');
    await until(async () => (await ready(damaged)).status === 200, 12_000);
    for (const g of [before, late, cluster, damaged]) expect(g.child.exitCode).toBeNull();
  }, 60_000);
});
