/**
 * SPEC §12 with `revocation.redis: true` and a revocation write that Redis receives late, as a token
 * crosses the threshold: the gate's write times out, yet Redis executes it once it arrives (a command
 * already sent cannot be recalled). The audit trail must not be silent about it: an
 * `anomaly_revoked` line with `outcome: "unknown"` is written for the attempt, and the late write
 * does revoke the token everywhere. The refusals are counted in Redis (the fleet's count), so the
 * delay is made by a relay holding the write (its MULTI carries XADD) alone, after the count was answered.
 */
import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { startRedis, startRelay, type RedisServer, type Relay } from '../fixtures/redis.ts';
import { parseMetrics, send, startGateInProcess, startRecordingUpstream, type InProcessGate, type RecordingUpstream } from '../fixtures/servers.ts';

let up: RecordingUpstream | undefined;
let gate: InProcessGate | undefined;
let redis: RedisServer | undefined;
let relay: Relay | undefined;

afterEach(async () => {
  relay?.release();
  await gate?.close();
  await relay?.close();
  await up?.close();
  if (gate !== undefined) await rm(gate.dir, { recursive: true, force: true });
  await redis?.remove();
  gate = undefined;
  up = undefined;
  redis = undefined;
  relay = undefined;
});

async function until(check: () => boolean | Promise<boolean>, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('anomaly revocation whose write reaches Redis late', () => {
  it('the timed-out write gets an anomaly_revoked audit line with outcome "unknown"; the late write revokes the token', async () => {
    redis = await startRedis();
    relay = await startRelay(redis.port);
    up = await startRecordingUpstream();
    const url = relay.url;
    gate = await startGateInProcess(up.url, (c) => {
      c.revocation = { ...c.revocation, redis: true, max_stale: '30s' };
      c.redis = { url, command_timeout: '300ms', connect_timeout: '2s' };
      c.anomaly = { deny_threshold: 3, window: '1m', revoke: 'jti' };
    });
    const g = gate;
    const t = await g.token({ jti: 'hung-1' });
    const auth = { authorization: `Bearer ${t}` };
    for (const p of ['/orders/1', '/admin']) expect((await send(g.url, p, { headers: auth })).status).toBe(403);
    relay.holdFrom('XADD');
    expect((await send(g.url, '/orders/43/items', { headers: auth })).status).toBe(403);

    await until(() => g.logs.some((l) => l.decision === 'anomaly_revoked'));
    const line = g.logs.find((l) => l.decision === 'anomaly_revoked')!;
    expect(line).toMatchObject({ type: 'audit', outcome: 'unknown', jti: 'hung-1', revoke: 'jti', refusals: 3 });
    expect(line.error).toMatch(/no answer from Redis within 300 ms/);
    const metrics = parseMetrics((await send(g.adminUrl, '/metrics')).text);
    expect(metrics.get('jitgate_anomaly_revocations_total{revoke="jti",result="error"}')).toBe(1);

    // Redis executes the write it had received: the attempt the audit line calls unknown took effect.
    relay.release();
    await until(async () => (await send(g.url, '/orders/42', { headers: auth })).status === 401, 15_000);
  }, 40_000);
});
