/**
 * A worker that died just before a stop (within the primary's 1 s restart delay, so not yet replaced) has
 * nothing to drain: the cluster still exits 0, as it does when the same crash came a moment earlier and
 * the worker was replaced. (It exited 1, failing a systemd unit on an ordinary stop; a cluster prober.)
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { send, spawnGate, startRecordingUpstream, stopGate, writeGateConfig, type GateProcess, type RecordingUpstream } from '../fixtures/servers.ts';

let up: RecordingUpstream;
let gate: GateProcess | undefined;
beforeAll(async () => {
  up = await startRecordingUpstream();
});
afterAll(async () => {
  await stopGate(gate);
  await up?.close();
});

it('a worker SIGKILLed just before SIGTERM: the other drains, the cluster exits 0, the death is still logged', async () => {
  const cfg = await writeGateConfig(up.url, (c) => {
    c.workers = 2;
  });
  gate = await spawnGate(cfg.file);
  const primary = gate.child.pid!;
  const [victim, survivor] = readFileSync(`/proc/${primary}/task/${primary}/children`, 'utf8').trim().split(/\s+/).map(Number) as [number, number];
  expect(survivor).toBeGreaterThan(0);
  process.kill(victim, 'SIGKILL');
  // The primary has seen the death (its /readyz says so; its log lines are flushed once a second), and the
  // 1 s restart delay has not run out.
  const deadline = Date.now() + 900;
  let readyz = await send(gate.adminUrl, '/readyz');
  while (Date.now() < deadline && !/not running/.test(readyz.text)) readyz = await send(gate.adminUrl, '/readyz');
  expect(readyz.status).toBe(503);
  expect(readyz.text).toMatch(/worker [12]: not running/);
  process.kill(primary, 'SIGTERM');
  expect(await gate.exited).toEqual({ code: 0, signal: null });
  expect(gate.lines.find((l) => l.msg === 'worker died; starting a new one')).toMatchObject({ level: 'error', signal: 'SIGKILL' });
  expect(gate.lines.find((l) => l.msg === 'all workers stopped')).toBeDefined();
}, 30_000);
