/**
 * WorkerSlots with a real forked worker (a stand-in script, not the gate): an IPC write to a worker that
 * died fails with EPIPE, which node's child_process raises as an 'error' on the worker's ChildProcess and
 * cluster re-raises on the Worker. Unheard, that ended the primary (worker-death-race.test.ts shows it on
 * a real gate, when the write fails at once; when it fails later node drops the error itself, so which one
 * happens is not ours to choose). Here the error is raised as node raises it, on the worker's process.
 */
import cluster from 'node:cluster';
import { writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, expect, it } from 'vitest';
import { WorkerSlots } from '../../src/cluster/worker-slots.ts';
import { tempDir } from '../fixtures/keys.ts';

let dir: string | undefined;
let slots: WorkerSlots | undefined;
afterAll(async () => {
  if (slots !== undefined) {
    slots.draining = true;
    slots.kill();
  }
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

it("a failed message to a worker (EPIPE, raised as node raises it) is logged, not thrown", async () => {
  dir = await tempDir('jitgate-worker-slots-');
  const script = join(dir, 'worker.mjs');
  // Says it started, then idles until killed.
  writeFileSync(script, "process.send({ type: 'jitgate:started', proxy: 'http://127.0.0.1:1', extAuthz: [] });\nsetInterval(() => {}, 1000);\n");
  cluster.setupPrimary({ exec: script, args: [], silent: true });
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  slots = new WorkerSlots(1, 'nonce', log);
  slots.draining = true; // no replacement once it is killed
  await slots.forkAll();
  const worker = slots.get(1)!;

  const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' });
  // What node's child_process does with a write that failed at once (internal/child_process, target._send).
  expect(() => worker.process.emit('error', epipe)).not.toThrow();
  expect(lines.find((l) => l.msg === 'a message to a worker failed; it is exiting')).toMatchObject({ worker: 1, worker_pid: worker.process.pid, err: 'EPIPE' });
});
