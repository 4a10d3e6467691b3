/**
 * A gate started while Redis is down (SPEC §9: "recovers by itself when Redis returns"; "loads every
 * live entry from Redis before it reports ready"). It starts, is not ready and answers 503 while it
 * holds no list; once Redis answers it loads, reports ready, refuses what was revoked before it started
 * and hands out the fleet's DPoP nonces. Before 2026-12-07 it exited 1, leaving the recovery to an
 * orchestrator's restart backoff. Real gate processes (one of them a cluster) on a real redis-server
 * killed and restarted from its AOF.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisKeys } from '../../src/fleet/redis-layout.ts';
import { dpopProof } from '../fixtures/dpop-proof.ts';
import { makeKey, type TestKey } from '../fixtures/keys.ts';
import { startRedis, type RedisServer } from '../fixtures/redis.ts';
import { send, spawnGate, startRecordingUpstream, tokenNow, writeGateConfig, type GateProcess, type RecordingUpstream } from '../fixtures/servers.ts';
import type { TestKeys } from '../fixtures/gate.ts';

const ORIGIN = 'http://orders.internal';
const PREFIX = 'down:';

let redis: RedisServer;
let upstream: RecordingUpstream;
let keys: TestKeys;
let dir: string;
let client: TestKey;
let jkt: string;
let configFor: (name: string, extra?: Record<string, unknown>) => Promise<string>;
const gates: GateProcess[] = [];

beforeAll(async () => {
  [redis, upstream, client] = await Promise.all([startRedis(), startRecordingUpstream(), makeKey('ES256', 'client')]);
  jkt = await calculateJwkThumbprint(client.publicJwk, 'sha256');
  const base = await writeGateConfig(upstream.url, (c) => {
    c.dpop = { replay: 'redis', use_nonce: true, nonce_rotation: '10m', external_origin: ORIGIN };
    c.log = { level: 'info', audit: false, destination: 'stdout' };
  });
  keys = base.keys;
  dir = base.dir;
  configFor = async (name, extra = {}) => {
    const file = join(dir, `${name}.yaml`);
    const raw = { ...base.raw, revocation: { redis: true, max_stale: '30s' }, redis: { url: redis.url, key_prefix: PREFIX, connect_timeout: '300ms' }, ...extra };
    await writeFile(file, JSON.stringify(raw));
    return file;
  };
}, 60_000);

afterAll(async () => {
  await Promise.all(
    gates.map(async (g) => {
      if (g.child.exitCode === null && g.child.signalCode === null) g.child.kill('SIGKILL');
      await g.exited;
    }),
  );
  await upstream?.close();
  await redis?.remove();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function startGate(name: string, extra?: Record<string, unknown>): Promise<GateProcess> {
  const g = await spawnGate(await configFor(name, extra));
  gates.push(g);
  return g;
}

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

/** Status, reason and DPoP-Nonce of one DPoP-bound request. */
async function dpopCall(g: GateProcess, token: string, jti: string, nonce?: string): Promise<{ status: number; reason: string | undefined; nonce: string | undefined }> {
  const proof = await dpopProof(client, token, { jti, htu: `${ORIGIN}/orders/42`, nonce });
  const r = await send(g.url, '/orders/42', { headers: { authorization: `DPoP ${token}`, dpop: proof } });
  return { status: r.status, reason: r.status === 200 ? undefined : (JSON.parse(r.text) as { reason: string }).reason, nonce: r.headers['dpop-nonce'] as string | undefined };
}

describe('Redis down when a gate starts', () => {
  it('the gate starts not ready and fails closed; when Redis returns it loads, is ready, and its nonces are the fleet’s', async () => {
    // The fleet before the outage: one gate (it writes the nonce key) and one revocation.
    const k = redisKeys(PREFIX);
    const before = await startGate('before');
    expect((await bearerCall(before, await tokenNow(keys, { jti: 'ok-before' })))[0]).toBe(200);
    await redis.command('EVAL', "redis.call('ZADD', KEYS[1], '+inf', ARGV[1]); return redis.call('XADD', KEYS[2], '*', 'entry', ARGV[1])", '2', k.live, k.log, '{"jti":"revoked-early"}');
    await until(async () => (await bearerCall(before, await tokenNow(keys, { jti: 'revoked-early' })))[1] === 'revoked', 3000);
    // Another prefix whose nonce key is damaged: found only once Redis is back.
    await redis.command('SET', 'damaged:dpop-nonce-key', 'not-a-key');
    await redis.kill();

    const [late, cluster, damaged] = await Promise.all([
      startGate('late'),
      startGate('late-cluster', { workers: 2 }),
      startGate('late-damaged', { redis: { url: redis.url, key_prefix: 'damaged:', connect_timeout: '300ms' } }),
    ]);
    for (const g of [late, cluster]) {
      const r = await ready(g);
      expect(r.status).toBe(503);
      expect(r.problems.join('\n')).toMatch(/revocation source redis:.*down:.* has not synced within max_stale/);
      // A fresh token is refused (503), as for a running gate past max_stale: nothing revoked can slip through.
      expect(await bearerCall(g, await tokenNow(keys, { jti: 'fresh-while-down' }))).toEqual([503, 'revocation_stale']);
    }
    await until(async () => late.lines.some((l) => l.level === 'error' && /redis unreachable at start; retrying in the background/.test(l.msg)), 5000);
    expect((await ready(late)).problems.join('\n')).toMatch(/dpop\.use_nonce: the fleet's DPoP nonce key has not been read from redis/);

    await redis.restart();
    for (const g of [late, cluster]) await until(async () => (await ready(g)).status === 200, 10_000);
    expect(await bearerCall(late, await tokenNow(keys, { jti: 'revoked-early' }))).toEqual([401, 'revoked']);
    expect(await bearerCall(cluster, await tokenNow(keys, { jti: 'revoked-early' }))).toEqual([401, 'revoked']);
    expect((await bearerCall(late, await tokenNow(keys, { jti: 'fresh-after' })))[0]).toBe(200);
    // Logged before /readyz could say 200, but written by the gate's log destination in its own time.
    await until(async () => late.lines.some((l) => /the fleet key was read from redis/.test(l.msg)), 5000);

    // The late gate's nonces are the fleet's: one handed out by the gate started before the outage passes there.
    await until(async () => (await ready(before)).status === 200, 10_000);
    const token = await tokenNow(keys, { jti: 'nonce-bound', cnf: { jkt } });
    const asked = await dpopCall(before, token, 'p-1');
    expect([asked.status, asked.reason]).toEqual([401, 'dpop_nonce_required']);
    expect(await dpopCall(late, token, 'p-2', asked.nonce)).toMatchObject({ status: 200 });
    // And the other way: the late gate hands out the same nonce.
    expect((await dpopCall(late, token, 'p-3')).nonce).toBe(asked.nonce);

    // A damaged key read after start is not an exit: the gate stays up, not ready, and says what to do.
    await until(async () => /the Redis key damaged:dpop-nonce-key does not hold a 32-byte base64url DPoP nonce key/.test((await ready(damaged)).problems.join('\n')), 10_000);
    expect((await ready(damaged)).status).toBe(503);
    // Deleted as the message says: read again on its own (the connection stayed up, so no reconnect would ask).
    await redis.command('DEL', 'damaged:dpop-nonce-key');
    await until(async () => (await ready(damaged)).status === 200, 12_000);
    for (const g of [before, late, cluster, damaged]) expect(g.child.exitCode).toBeNull();
  }, 60_000);
});
