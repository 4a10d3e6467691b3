/**
 * The cluster's exit status when a worker dies around a stop. A worker that died just before a stop (within the primary's 1 s restart delay, so not yet replaced) has
 * nothing to drain: the cluster still exits 0, as it does when the same crash came a moment earlier and
 * the worker was replaced. (It exited 1, failing a systemd unit on an ordinary stop; a cluster prober.)
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { send, spawnGate, startRecordingUpstream, stopGate, tokenNow, writeGateConfig, type GateProcess, type RecordingUpstream } from '../fixtures/servers.ts';

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

it('a worker SIGKILLed during the drain: exit 1, and the line names it with its signal (a re-probe saw only codes:[1,0])', async () => {
  up.respond = (_req, res, rec) => void rec.done.then(() => setTimeout(() => res.writeHead(200).end('slow'), 3_000));
  const cfg = await writeGateConfig(up.url, (c) => {
    c.workers = 2;
    c.shutdown = { grace: '10s' };
  });
  gate = await spawnGate(cfg.file);
  const primary = gate.child.pid!;
  const token = await tokenNow(cfg.keys);
  const seen = up.requests.length;
  const inFlight = [0, 1].map(() => send(gate!.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } }).catch((e: Error) => e));
  await up.waitFor(seen + 2);
  const workers = readFileSync(`/proc/${primary}/task/${primary}/children`, 'utf8').trim().split(/\s+/).map(Number);
  process.kill(primary, 'SIGTERM');
  // A worker holding a request drains for up to 3 s; one that holds none may already be gone.
  await new Promise((r) => setTimeout(r, 300));
  const alive = workers.filter((pid) => running(pid));
  expect(alive.length).toBeGreaterThan(0);
  process.kill(alive[0]!, 'SIGKILL');
  expect(await gate.exited).toEqual({ code: 1, signal: null });
  await Promise.all(inFlight);
  const line = gate.lines.find((l) => l.msg === 'worker did not finish its drain cleanly');
  expect(line).toMatchObject({ level: 'warn', worker_pid: alive[0], signal: 'SIGKILL' });
  up.respond = (_req, res) => res.writeHead(200).end('ok');
}, 30_000);

function running(pid: number): boolean {
  try {
    return !/State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}
