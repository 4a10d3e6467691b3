/**
 * A log destination that stops taking lines (an unread stdout pipe, a stalled log driver or disk):
 * the gate keeps answering, holds at most MAX_PENDING_BYTES for it, drops and counts the rest
 * (jitgate_log_dropped_lines_total, one warning on stderr), piles up no listeners, and logs
 * again once the destination reads.
 */
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PENDING_BYTES } from '../../src/observability/logger.ts';
import { parseMetrics, send, spawnGateStuckStdout, startRecordingUpstream, tokenNow, writeGateConfig, type RecordingUpstream } from '../fixtures/servers.ts';

/** autocannon ships no types; this is the part used here. */
interface LoadResult {
  readonly errors: number;
  readonly non2xx: number;
  readonly '2xx': number;
}
const autocannon = createRequire(import.meta.url)('autocannon') as (opts: object) => Promise<LoadResult>;

let up: RecordingUpstream;

beforeAll(async () => {
  up = await startRecordingUpstream();
});
afterAll(async () => {
  await up?.close();
});

describe('a stuck log destination', () => {
  it('bounds what waits for it, counts the dropped lines, and recovers when it reads again', async () => {
    const cfg = await writeGateConfig(up.url);
    const { child, started, stderr } = await spawnGateStuckStdout(cfg.file);
    try {
      const token = await tokenNow(cfg.keys);
      // Well past MAX_PENDING_BYTES of audit lines: each names its ~2 KB path, so a sixth as many requests
      // as with short lines (the test's cost is the requests; under load 100k of them took over a minute).
      const path = `/orders/42/${'p'.repeat(2000)}`;
      const lines = Math.ceil((MAX_PENDING_BYTES / 2000) * 1.5);
      const load = await autocannon({ url: `${started.proxy}${path}`, connections: 20, amount: lines, headers: { authorization: `Bearer ${token}` } });
      expect(load.errors).toBe(0);
      expect(load.non2xx).toBe(0);
      expect(load['2xx']).toBe(lines);

      const metrics = parseMetrics((await send(started.admin!, '/metrics')).text);
      const dropped = metrics.get('jitgate_log_dropped_lines_total')!;
      expect(dropped).toBeGreaterThan(0);
      expect(dropped).toBeLessThan(lines);
      expect(metrics.get('jitgate_decisions_total{transport="proxy",result="allow",reason="granted"}')).toBe(lines);
      // Let the once-a-second flush run a few times against the stuck pipe.
      await new Promise((r) => setTimeout(r, 3500));
      const warnings = stderr().split('\n').filter((l) => l.includes('dropping lines'));
      expect(warnings).toHaveLength(1);
      expect(JSON.parse(warnings[0]!)).toMatchObject({ level: 'warn', msg: expect.stringContaining('jitgate_log_dropped_lines_total') });
      expect(stderr()).not.toContain('MaxListenersExceededWarning');

      // Reading again: what was held drains, and new lines get through.
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stdout!.resume();
      expect((await send(started.proxy!, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      expect((await send(started.proxy!, '/orders/4242')).status).toBe(401);
      for (let i = 0; i < 100 && !out.includes('"path":"/orders/4242"'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(out).toContain('"path":"/orders/4242"');
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);
});
