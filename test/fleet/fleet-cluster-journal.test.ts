/**
 * `workers: 2` with both revocation.journal and revocation.redis (SPEC §5, §9, §12): an anomaly
 * revocation takes the path a POST /revocations takes, through the primary, which journals it,
 * hands it to every worker and writes it to Redis, as a single gate journals its own. Written to
 * Redis alone, it would be gone after Redis lost its data, and the probing token accepted again.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../fixtures/redis.ts';
import { lineOn, send, spawnGate, tokenNow, type GateProcess, type RecordingUpstream, type writeGateConfig } from '../fixtures/servers.ts';
import { startClusterScene, stopClusterScene } from './cluster-scene.ts';

let redis: RedisServer;
let upstream: RecordingUpstream;
let gate: GateProcess;
let cfg: Awaited<ReturnType<typeof writeGateConfig>>;
let journal: string;

beforeAll(async () => {
  ({ redis, upstream, cfg, gate } = await startClusterScene(
    (c) => {
      c.log = { level: 'info', audit: true, destination: 'stdout' };
      c.anomaly = { deny_threshold: 4, window: '1m', revoke: 'jti' };
    },
    async (written) => {
      journal = join(written.dir, 'revocations.jsonl');
      written.raw.revocation = { redis: true, journal, max_stale: '10s' };
      await writeFile(written.file, JSON.stringify(written.raw));
    },
  ));
}, 90_000);

afterAll(() => stopClusterScene({ gate, upstream, redis, cfg }));

describe('workers: 2 with a journal and Redis', () => {
  it('an anomaly revocation is journaled and written to Redis, and still enforced after Redis lost its data', async () => {
    const token = await tokenNow(cfg.keys, { jti: 'journal-probe' });
    const auth = { authorization: `Bearer ${token}` };
    for (let i = 0; i < 4; i++) expect((await send(gate.url, '/admin', { headers: auth })).status).toBe(403);
    const started = Date.now();
    while ((await send(gate.url, '/orders/42', { headers: auth })).status !== 401) {
      if (Date.now() - started > 5000) throw new Error('not revoked within 5 s of the fourth refusal');
    }
    expect(await readFile(journal, 'utf8')).toContain('"jti":"journal-probe"');
    // Every worker enforces it before the primary writes it to Redis (journal, workers, then Redis):
    // the refusing worker's audit line says the whole append is done.
    expect(await lineOn(gate, (l) => l.decision === 'anomaly_revoked' && l.jti === 'journal-probe' && l.outcome === 'ok')).toBeDefined();
    expect(String(await redis.command('ZRANGE', 'jitgate:revocations', '0', '-1'))).toContain('journal-probe');

    // Redis lost its data (a restart without persistence, a failover) and the gate restarted: the journal still has it.
    gate.child.kill('SIGTERM');
    await gate.exited;
    await redis.command('FLUSHALL');
    gate = await spawnGate(cfg.file);
    const r = await send(gate.url, '/orders/42', { headers: auth });
    expect([r.status, JSON.parse(r.text).reason]).toEqual([401, 'revoked']);
  }, 60_000);
});
