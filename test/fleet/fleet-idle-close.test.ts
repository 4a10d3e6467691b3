/**
 * A gate whose only Redis use is the DPoP replay check (dpop.replay: redis, no revocation.redis)
 * and so sends nothing to Redis between DPoP requests (SPEC §9, docs/fleet.md): a connection Redis
 * closes meanwhile is noticed from the close, not from the next request's failure. While Redis is
 * away /readyz and jitgate_redis_connected{connection="command"} say so; once it is back they say
 * ready again with no request having been made.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltGate } from '../fixtures/built-gate.ts';
import { startRedisGates, type RedisGates } from '../fixtures/redis-gates.ts';
import { ISSUER_A } from '../fixtures/tokens.ts';

let rg: RedisGates;

beforeAll(async () => {
  rg = await startRedisGates();
});
afterEach(async () => {
  await rg.runDeferred();
});
afterAll(async () => {
  await rg?.remove();
});

async function until(what: string, ok: () => Promise<boolean> | boolean, ms = 3000): Promise<void> {
  const started = Date.now();
  while (!(await ok())) {
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const commandGauge = async (g: BuiltGate): Promise<number | undefined> =>
  (await g.metrics.registry.getSingleMetric('jitgate_redis_connected')!.get()).values.find((v) => v.labels.connection === 'command')?.value;

describe('dpop.replay: redis without revocation.redis', () => {
  it('Redis gone while the gate is idle: not ready and the gauge 0 without a request; back: ready and 1 again', async () => {
    const g = await rg.startGate({
      issuers: [{ issuer: ISSUER_A, jwks_file: rg.jwksFile }],
      dpop: { replay: 'redis', external_origin: 'http://orders.internal' },
      redis: { url: rg.redis.url },
    } as never);
    expect(g.gate.readiness().ready).toBe(true);
    expect(await commandGauge(g)).toBe(1);

    await rg.redis.kill();
    await until('not ready', () => !g.gate.readiness().ready);
    expect(g.gate.readiness().problems.join('\n')).toMatch(/replay_check_unavailable/);
    expect(await commandGauge(g)).toBe(0);

    await rg.redis.restart();
    await until('ready again', () => g.gate.readiness().ready, 8000);
    expect(await commandGauge(g)).toBe(1);
  }, 20_000);
});
