/**
 * SPEC §12 on SPEC §9: three real gate processes (`jitgate serve`) sharing one real redis-server with
 * `revocation.redis` and `anomaly` count one token's refusals together. A prober spreading its
 * requests over the gates is revoked at `deny_threshold` refusals in all — not at up to
 * 3 × (threshold − 1) — with exactly one `anomaly_revoked` line in the fleet; fewer refusals than the
 * threshold revoke nothing; a gate whose Redis path is cut still answers every refusal (the count
 * fails, and says so in jitgate_redis_errors_total{op="anomaly"}), and counts again once it is back.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, startRelay, type RedisServer, type Relay } from '../fixtures/redis.ts';
import { parseMetrics, send, spawnGate, startRecordingUpstream, tokenNow, writeGateConfig, type GateProcess, type RecordingUpstream } from '../fixtures/servers.ts';
import type { TestKeys } from '../fixtures/gate.ts';

const THRESHOLD = 3;
/** Past the runtime's once-a-second flush of buffered log lines (src/runtime.ts LOG_FLUSH_MS). */
const FLUSH_WAIT_MS = 1_500;

let redis: RedisServer;
let relay: Relay;
let upstream: RecordingUpstream;
let keys: TestKeys;
let dir: string;
const gates: GateProcess[] = [];

beforeAll(async () => {
  [redis, upstream] = await Promise.all([startRedis(), startRecordingUpstream()]);
  relay = await startRelay(redis.port);
  const base = await writeGateConfig(upstream.url, (c) => {
    c.revocation = { ...c.revocation, redis: true, max_stale: '8s' };
    c.anomaly = { deny_threshold: THRESHOLD, window: '1m', revoke: 'jti' };
    c.log = { level: 'info', audit: true, destination: 'stdout' };
  });
  keys = base.keys;
  dir = base.dir;
  // Gate 2 reaches Redis only through the relay.
  const files = await Promise.all(
    [0, 1, 2].map(async (i) => {
      const file = join(dir, `gate-${i}.yaml`);
      await writeFile(file, JSON.stringify({ ...base.raw, redis: { url: i === 2 ? relay.url : redis.url, connect_timeout: '5s', command_timeout: '500ms' } }));
      return file;
    }),
  );
  gates.push(...(await Promise.all(files.map((f) => spawnGate(f)))));
}, 120_000);

afterAll(async () => {
  for (const g of gates) if (g.child.exitCode === null && g.child.signalCode === null) g.child.kill('SIGKILL');
  await Promise.all(gates.map((g) => g.exited));
  await relay?.close();
  await upstream?.close();
  await redis?.remove();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function until(check: () => Promise<boolean> | boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const statusAt = async (g: GateProcess, token: string, path: string): Promise<number> => (await send(g.url, path, { headers: { authorization: `Bearer ${token}` } })).status;
const revokedLines = (jti: string): Record<string, any>[] => gates.flatMap((g) => g.lines.filter((l) => l.decision === 'anomaly_revoked' && l.jti === jti));
const anomalyErrors = async (g: GateProcess): Promise<number> => parseMetrics((await send(g.adminUrl, '/metrics')).text).get('jitgate_redis_errors_total{op="anomaly"}') ?? 0;

describe('anomaly counting across a fleet on Redis', () => {
  it('refusals spread over three gates add up: the third revokes the token at every gate, with one anomaly_revoked line', async () => {
    const token = await tokenNow(keys, { jti: 'spread-1' });
    expect(await statusAt(gates[0]!, token, '/admin')).toBe(403);
    expect(await statusAt(gates[1]!, token, '/orders/1')).toBe(403);
    // Two refusals, on two gates: each gate alone is below the threshold, and so is the fleet.
    for (const g of gates) expect(await statusAt(g, token, '/orders/42')).toBe(200);
    expect(await statusAt(gates[2]!, token, '/admin/users')).toBe(403);
    for (const g of gates) await until(async () => (await statusAt(g, token, '/orders/42')) === 401, 5_000);

    await until(() => revokedLines('spread-1').length > 0, 5_000);
    // The gate told of the crossing revokes; the others hear of it through Redis and write no line of
    // their own. Gates hand audit lines to stdout at least once a second (LOG_FLUSH_MS), so a second
    // line, were there one, would be here after this wait.
    await new Promise((r) => setTimeout(r, FLUSH_WAIT_MS));
    const lines = revokedLines('spread-1');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ type: 'audit', outcome: 'ok', revoke: 'jti', refusals: THRESHOLD, reason: 'path_not_granted' });
    expect(gates[2]!.lines).toContainEqual(expect.objectContaining({ decision: 'anomaly_revoked', jti: 'spread-1' }));
    // The count lives in Redis, expiring with the window.
    const keysNow = (await redis.command('KEYS', 'jitgate:anomaly:*')) as string[];
    expect(keysNow.length).toBeGreaterThan(0);
    for (const k of keysNow) {
      const ttl = Number(await redis.command('PTTL', k));
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60_000);
    }
  }, 30_000);

  it('fewer refusals than the threshold, spread over the gates, revoke nothing', async () => {
    const token = await tokenNow(keys, { jti: 'below-1' });
    expect(await statusAt(gates[1]!, token, '/admin')).toBe(403);
    expect(await statusAt(gates[2]!, token, '/admin')).toBe(403);
    await new Promise((r) => setTimeout(r, 500));
    for (const g of gates) expect(await statusAt(g, token, '/orders/42')).toBe(200);
    expect(revokedLines('below-1')).toHaveLength(0);
  }, 30_000);

  it('a gate cut off from Redis still answers each refusal, counts the failure, and counts again once Redis is back', async () => {
    const g = gates[2]!;
    const token = await tokenNow(keys, { jti: 'cut-1' });
    const before = await anomalyErrors(g);
    await relay.cut();
    // The answer never waits on counting, and never changes with it.
    for (let i = 0; i < THRESHOLD + 1; i++) expect(await statusAt(g, token, '/admin')).toBe(403);
    await until(async () => (await anomalyErrors(g)) >= before + THRESHOLD + 1, 5_000);
    expect(revokedLines('cut-1')).toHaveLength(0);
    await relay.restore();
    await until(async () => parseMetrics((await send(g.adminUrl, '/metrics')).text).get('jitgate_redis_connected{connection="command"}') === 1, 10_000);
    // Uncounted refusals stay uncounted: the threshold is reached by new ones, here on two gates.
    expect(await statusAt(g, token, '/admin')).toBe(403);
    expect(await statusAt(gates[0]!, token, '/admin')).toBe(403);
    expect(await statusAt(g, token, '/orders/42')).toBe(200);
    expect(await statusAt(gates[1]!, token, '/admin')).toBe(403);
    for (const x of gates) await until(async () => (await statusAt(x, token, '/orders/42')) === 401, 5_000);
    await until(() => revokedLines('cut-1').length > 0, 5_000);
    await new Promise((r) => setTimeout(r, FLUSH_WAIT_MS));
    expect(revokedLines('cut-1')).toHaveLength(1);
  }, 40_000);
});
