/**
 * A second `jitgate serve` on the config of a running gate (an operator's slip, or a supervisor
 * starting the new process before the old one let go) fails on its ports; it must do so before it
 * writes into the running gate's audit file. It used to append its chain_start (and, with a key, a
 * final checkpoint) first: the running gate went on from its own seq, and the untampered file never
 * verified again (SPEC §12; the thirteenth round's black-box probe). Single process and cluster.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, load, serveToFile, stop } from '../fixtures/audit-gate.ts';
import { runCli } from '../fixtures/cli.ts';
import { startRecordingUpstream, tokenNow, writeGateConfig, type RecordingUpstream } from '../fixtures/servers.ts';

let up: RecordingUpstream;
const dirs: string[] = [];

beforeAll(async () => {
  up = await startRecordingUpstream();
});
afterAll(async () => {
  killAll();
  await up?.close();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('a second serve on a running gate\'s config', () => {
  for (const workers of [1, 2]) {
    it(`case=workers: ${workers} → the second exits 1 naming the port in use, and writes nothing into the audit file, which verifies`, async () => {
      const cfg = await writeGateConfig(up.url, (c) => {
        c.log = { level: 'info', destination: './audit.log', audit_chain: true };
        c.workers = workers;
      });
      dirs.push(cfg.dir);
      const log = join(cfg.dir, 'audit.log');
      const a = await serveToFile(cfg.file, log, 0);
      const port = Number(new URL(a.url).port);
      const token = await tokenNow(cfg.keys);
      await load(a.url, token, 20);
      // The same config on the ports the running gate holds (port 0 would be fresh ones).
      const second = join(cfg.dir, 'second.yaml');
      const raw = { ...cfg.raw, listen: { host: '127.0.0.1', port }, log: { level: 'info', destination: log, audit_chain: true } };
      await writeFile(second, JSON.stringify(raw));
      const b = await runCli(['serve', '-c', second]);
      expect(b.code).toBe(1);
      expect(b.stderr).toContain(`proxy: listen 127.0.0.1:${port}: address in use`);
      await load(a.url, token, 20);
      expect(await stop(a.child)).toBe(0);
      // Only the running gate's own chain starts (one per chain) are in the file.
      const lines = (await readFile(log, 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
      expect(lines.filter((l) => l.event === 'chain_start')).toHaveLength(workers);
      const r = await runCli(['audit', 'verify', log]);
      expect(r.stdout).toMatch(/^OK: \d+ chain lines checked$/m);
      expect(r.code).toBe(0);
    }, 60_000);
  }
});
