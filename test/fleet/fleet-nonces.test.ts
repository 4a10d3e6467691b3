/**
 * DPoP nonces across a fleet (docs/fleet.md "DPoP nonces"): gates on one Redis prefix take the
 * nonce key from Redis at start, so a nonce one gate hands out is accepted by another, including a
 * gate started later. A gate on another prefix derives other nonces (the control that shows the
 * sharing is what makes the first gate's nonce pass). A damaged key in Redis stops startup with
 * an error naming it, rather than deriving nonces the fleet would not agree on.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dpopProof } from '../fixtures/dpop-proof.ts';
import { runCli } from '../fixtures/cli.ts';
import { makeKey, type TestKey } from '../fixtures/keys.ts';
import { startRedis, type RedisServer } from '../fixtures/redis.ts';
import { send, spawnGate, startRecordingUpstream, tokenNow, writeGateConfig, type GateProcess, type RecordingUpstream } from '../fixtures/servers.ts';
import type { TestKeys } from '../fixtures/gate.ts';

const ORIGIN = 'http://orders.internal';

let redis: RedisServer;
let upstream: RecordingUpstream;
let keys: TestKeys;
let dir: string;
let client: TestKey;
let jkt: string;
let configFor: (name: string, prefix: string, dpop?: Record<string, unknown>) => Promise<string>;
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
  configFor = async (name, prefix, dpop = {}) => {
    const file = join(dir, `${name}.yaml`);
    await writeFile(file, JSON.stringify({ ...base.raw, dpop: { ...base.raw.dpop, ...dpop }, redis: { url: redis.url, key_prefix: prefix, connect_timeout: '5s' } }));
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

async function startGate(name: string, prefix: string, dpop?: Record<string, unknown>): Promise<GateProcess> {
  const g = await spawnGate(await configFor(name, prefix, dpop));
  gates.push(g);
  return g;
}

const proof = (token: string, jti: string, nonce?: string): Promise<string> => dpopProof(client, token, { jti, htu: `${ORIGIN}/orders/42`, nonce });

/** Status, reason (for a denial) and the DPoP-Nonce header of one DPoP-bound request. */
async function call(g: GateProcess, token: string, jti: string, nonce?: string): Promise<{ status: number; reason: string | undefined; nonce: string | undefined }> {
  const r = await send(g.url, '/orders/42', { headers: { authorization: `DPoP ${token}`, dpop: await proof(token, jti, nonce) } });
  return { status: r.status, reason: r.status === 200 ? undefined : (JSON.parse(r.text) as { reason: string }).reason, nonce: r.headers['dpop-nonce'] as string | undefined };
}

describe('DPoP nonces shared through Redis', () => {
  it('a nonce handed out by one gate is accepted by another on the same prefix, and by one started later', async () => {
    const [a, b] = await Promise.all([startGate('a', 'fleet:'), startGate('b', 'fleet:')]);
    const token = await tokenNow(keys, { jti: 'nonce-bound', cnf: { jkt } });
    const asked = await call(a, token, 'p-1');
    expect([asked.status, asked.reason]).toEqual([401, 'dpop_nonce_required']);
    expect(asked.nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await call(b, token, 'p-2', asked.nonce)).toMatchObject({ status: 200 });
    const c = await startGate('c', 'fleet:');
    expect(await call(c, token, 'p-3', asked.nonce)).toMatchObject({ status: 200 });
    // A redis block is enough: a gate that keeps DPoP replay local still shares the nonces.
    const d = await startGate('d', 'fleet:', { replay: 'local' });
    expect(await call(d, token, 'p-4', asked.nonce)).toMatchObject({ status: 200 });
    expect(((await redis.command('KEYS', 'fleet:dpop-nonce-key')) as string[]).length).toBe(1);
  });

  it('a gate on another prefix derives other nonces: the first gate’s nonce is refused there', async () => {
    const [a, other] = await Promise.all([startGate('a2', 'fleet:'), startGate('other', 'elsewhere:')]);
    const token = await tokenNow(keys, { jti: 'nonce-bound-2', cnf: { jkt } });
    const { nonce } = await call(a, token, 'q-1');
    expect(nonce).toBeDefined();
    expect(await call(other, token, 'q-2', nonce)).toMatchObject({ status: 401, reason: 'dpop_nonce_required' });
    // Its own nonce passes there, so the refusal above was about the key, not the proof.
    const own = await call(other, token, 'q-3');
    expect(await call(other, token, 'q-4', own.nonce)).toMatchObject({ status: 200 });
  });

  it('a gate starts while Redis refuses writes (maxmemory, noeviction) when the fleet already has its key: a rolling restart is no outage', async () => {
    const first = await startGate('before-full', 'full:');
    expect(((await redis.command('KEYS', 'full:dpop-nonce-key')) as string[]).length).toBe(1);
    const used = Number(/used_memory:(\d+)/.exec(String(await redis.command('INFO', 'memory')))![1]);
    await redis.command('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    await redis.command('CONFIG', 'SET', 'maxmemory', String(used - 100_000));
    try {
      await expect(redis.command('SET', 'probe', 'x')).rejects.toThrow(/OOM/);
      const second = await startGate('while-full', 'full:');
      // The same key: a nonce from the first gate passes the second.
      const token = await tokenNow(keys, { jti: 'nonce-full', cnf: { jkt } });
      const asked = await call(first, token, 'f-1');
      const checked = await call(second, token, 'f-2', asked.nonce);
      // The proof itself cannot be recorded while Redis refuses writes: 503, never an allow.
      expect([checked.status, checked.reason]).toEqual([503, 'replay_check_unavailable']);
      // And without a key yet, the refusal says what is wrong.
      const r = await runCli(['serve', '-c', await configFor('no-key-while-full', 'empty-full:')]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/\(OOM .*\); Redis refuses writes: free memory \(maxmemory\) or point redis\.url at the primary/);
    } finally {
      await redis.command('CONFIG', 'SET', 'maxmemory', '0');
    }
  }, 60_000);

  it('a damaged key in Redis stops startup with an error naming it', async () => {
    await redis.command('SET', 'damaged:dpop-nonce-key', 'not-a-key');
    const r = await runCli(['serve', '-c', await configFor('damaged', 'damaged:')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain('damaged:dpop-nonce-key');
    expect(r.stderr + r.stdout).toContain('redis.key_prefix');
  });
});
