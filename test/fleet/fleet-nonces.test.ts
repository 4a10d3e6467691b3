/**
 * DPoP nonces across a fleet (docs/fleet.md "DPoP nonces"): gates on one Redis prefix take the
 * nonce key from Redis at start, so a nonce one gate hands out is accepted by another, including a
 * gate started later. A gate on another prefix derives other nonces (the control that shows the
 * sharing is what makes the first gate's nonce pass). A damaged key in Redis stops startup with
 * an error naming it, rather than deriving nonces the fleet would not agree on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../fixtures/cli.ts';
import { startDpopFleet, type DpopFleet } from '../fixtures/dpop-fleet.ts';
import { tokenNow, type GateProcess } from '../fixtures/servers.ts';

let fleet: DpopFleet;

beforeAll(async () => {
  fleet = await startDpopFleet();
}, 60_000);
afterAll(async () => {
  await fleet?.remove();
});

/** A gate on `prefix` of the fleet's Redis, `dpop` laid over the base's. */
const onPrefix = (prefix: string, dpop: Record<string, unknown> = {}) => (base: Record<string, any>) => ({ dpop: { ...base.dpop, ...dpop }, redis: { url: fleet.redis.url, key_prefix: prefix, connect_timeout: '5s' } });
const configFor = (name: string, prefix: string): Promise<string> => fleet.config(name, onPrefix(prefix));
const startGate = (name: string, prefix: string, dpop?: Record<string, unknown>): Promise<GateProcess> => fleet.start(name, onPrefix(prefix, dpop));
const call = (g: GateProcess, token: string, jti: string, nonce?: string) => fleet.call(g, token, jti, nonce);

describe('DPoP nonces shared through Redis', () => {
  it('a nonce handed out by one gate is accepted by another on the same prefix, and by one started later', async () => {
    const [a, b] = await Promise.all([startGate('a', 'fleet:'), startGate('b', 'fleet:')]);
    const token = await tokenNow(fleet.keys, { jti: 'nonce-bound', cnf: { jkt: fleet.jkt } });
    const asked = await call(a, token, 'p-1');
    expect([asked.status, asked.reason]).toEqual([401, 'dpop_nonce_required']);
    expect(asked.nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await call(b, token, 'p-2', asked.nonce)).toMatchObject({ status: 200 });
    const c = await startGate('c', 'fleet:');
    expect(await call(c, token, 'p-3', asked.nonce)).toMatchObject({ status: 200 });
    // A redis block is enough: a gate that keeps DPoP replay local still shares the nonces.
    const d = await startGate('d', 'fleet:', { replay: 'local' });
    expect(await call(d, token, 'p-4', asked.nonce)).toMatchObject({ status: 200 });
    expect(((await fleet.redis.command('KEYS', 'fleet:dpop-nonce-key')) as string[]).length).toBe(1);
  });

  it('a gate on another prefix derives other nonces: the first gate’s nonce is refused there', async () => {
    const [a, other] = await Promise.all([startGate('a2', 'fleet:'), startGate('other', 'elsewhere:')]);
    const token = await tokenNow(fleet.keys, { jti: 'nonce-bound-2', cnf: { jkt: fleet.jkt } });
    const { nonce } = await call(a, token, 'q-1');
    expect(nonce).toBeDefined();
    expect(await call(other, token, 'q-2', nonce)).toMatchObject({ status: 401, reason: 'dpop_nonce_required' });
    // Its own nonce passes there, so the refusal above was about the key, not the proof.
    const own = await call(other, token, 'q-3');
    expect(await call(other, token, 'q-4', own.nonce)).toMatchObject({ status: 200 });
  });

  it('a gate starts while Redis refuses writes (maxmemory, noeviction) when the fleet already has its key: a rolling restart is no outage', async () => {
    const first = await startGate('before-full', 'full:');
    expect(((await fleet.redis.command('KEYS', 'full:dpop-nonce-key')) as string[]).length).toBe(1);
    const used = Number(/used_memory:(\d+)/.exec(String(await fleet.redis.command('INFO', 'memory')))![1]);
    await fleet.redis.command('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    await fleet.redis.command('CONFIG', 'SET', 'maxmemory', String(used - 100_000));
    try {
      await expect(fleet.redis.command('SET', 'probe', 'x')).rejects.toThrow(/OOM/);
      const second = await startGate('while-full', 'full:');
      // The same key: a nonce from the first gate passes the second.
      const token = await tokenNow(fleet.keys, { jti: 'nonce-full', cnf: { jkt: fleet.jkt } });
      const asked = await call(first, token, 'f-1');
      const checked = await call(second, token, 'f-2', asked.nonce);
      // The proof itself cannot be recorded while Redis refuses writes: 503, never an allow.
      expect([checked.status, checked.reason]).toEqual([503, 'replay_check_unavailable']);
      // And without a key yet, the refusal says what is wrong.
      const r = await runCli(['serve', '-c', await configFor('no-key-while-full', 'empty-full:')]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/\(OOM .*\); Redis refuses writes: free memory \(maxmemory\) or point redis\.url at the primary/);
    } finally {
      await fleet.redis.command('CONFIG', 'SET', 'maxmemory', '0');
    }
  }, 60_000);

  it('a damaged key in Redis stops startup with an error naming it', async () => {
    await fleet.redis.command('SET', 'damaged:dpop-nonce-key', 'not-a-key');
    const r = await runCli(['serve', '-c', await configFor('damaged', 'damaged:')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain('damaged:dpop-nonce-key');
    expect(r.stderr + r.stdout).toContain('redis.key_prefix');
  });
});
