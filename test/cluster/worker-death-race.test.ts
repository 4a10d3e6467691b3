/**
 * A worker that dies (SIGKILL, the OOM killer) while the primary is asked something about it. Until the
 * primary has read the end of that worker's IPC channel, the worker still looks connected; a message
 * sent to it then fails with EPIPE, which node raises as an 'error' event on the worker. With no
 * listener that error ended the whole primary, and with it every worker's drain: CI saw only "socket
 * hang up" on an admin request of test/cli/serve.test.ts, right after the test killed a worker.
 *
 * Made certain here: the primary is stopped (SIGSTOP), a /readyz request is written on an admin
 * connection it already accepted, the worker is killed, and then the primary is woken. It reads the
 * request before the channel's end (the request was ready first), so it asks the dead worker.
 */
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { send, spawnGate, startRecordingUpstream, stopGate, writeGateConfig, type GateProcess, type RecordingUpstream } from '../fixtures/servers.ts';

let up: RecordingUpstream;
let gate: GateProcess | undefined;
beforeAll(async () => {
  up = await startRecordingUpstream();
});
afterAll(async () => {
  if (gate !== undefined) {
    try {
      process.kill(gate.child.pid!, 'SIGCONT');
    } catch {
      // gone
    }
  }
  await stopGate(gate);
  await up?.close();
});

/** Reads one HTTP answer's status line and head from a keep-alive socket. */
function nextAnswer(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const length = Number(/content-length: (\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
      if (buf.length < end + 4 + length) return;
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(buf.slice(0, end + 4 + length));
    };
    const onClose = (): void => reject(new Error(`the admin connection closed with no answer (${buf.length} bytes read)`));
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

const READYZ = 'GET /readyz HTTP/1.1\r\nHost: admin\r\n\r\n';

it('a /readyz that asks a worker killed a moment before: answered (503, the worker not running), the primary lives on', async () => {
  const cfg = await writeGateConfig(up.url, (c) => {
    c.workers = 2;
  });
  gate = await spawnGate(cfg.file);
  const primary = gate.child.pid!;
  const admin = new URL(gate.adminUrl);
  const socket = connect(Number(admin.port), admin.hostname);
  socket.on('error', () => {});
  try {
    // Accepted and answered once: the connection is the primary's before it is stopped.
    socket.write(READYZ);
    expect(await nextAnswer(socket)).toMatch(/^HTTP\/1\.1 200 /);
    const victim = readFileSync(`/proc/${primary}/task/${primary}/children`, 'utf8').trim().split(/\s+/).map(Number)[0]!;

    process.kill(primary, 'SIGSTOP');
    const answer = nextAnswer(socket);
    socket.write(READYZ);
    await new Promise((r) => setTimeout(r, 100));
    process.kill(victim, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    process.kill(primary, 'SIGCONT');

    const head = await answer;
    expect(head).toMatch(/^HTTP\/1\.1 503 /);
    expect(head).toMatch(/worker [12]: not running/);
    // The primary is still there, and replaces the worker: readiness comes back.
    const until = Date.now() + 15_000;
    let ready = 0;
    while (Date.now() < until && (ready = (await send(gate.adminUrl, '/readyz')).status) !== 200) await new Promise((r) => setTimeout(r, 100));
    expect(ready).toBe(200);
    expect(gate.child.exitCode).toBeNull();
  } finally {
    socket.destroy();
  }
  await stopGate(gate);
  expect(await gate.exited).toEqual({ code: 0, signal: null });
  expect(gate.lines.find((l) => l.msg === 'worker died; starting a new one')).toBeDefined();
  // (Whether the write to the dead worker fails at once, raising the error, or later, when node drops it
  // itself, is the kernel's and libuv's to say: on a quiet machine it failed at once in 3 of 3 runs, and
  // the primary before the fix died each time; under CPU stress it did not always. worker-slots-epipe.test.ts
  // raises the error as node does, every time.)
}, 30_000);

it('the other way round: a worker answering a primary killed a moment before logs it and drains, not crashes', async () => {
  const cfg = await writeGateConfig(up.url, (c) => {
    c.workers = 2;
  });
  gate = await spawnGate(cfg.file);
  const primary = gate.child.pid!;
  const worker = readFileSync(`/proc/${primary}/task/${primary}/children`, 'utf8').trim().split(/\s+/).map(Number)[0]!;
  // The worker is stopped; the primary asks it for its metrics (a scrape), then is killed. Woken, the
  // worker reads the request before the channel's end and answers into a closed channel.
  process.kill(worker, 'SIGSTOP');
  const scrape = send(gate.adminUrl, '/metrics').catch((e: Error) => e);
  await new Promise((r) => setTimeout(r, 300));
  process.kill(primary, 'SIGKILL');
  expect(await gate.exited).toEqual({ code: null, signal: 'SIGKILL' });
  await scrape;
  process.kill(worker, 'SIGCONT');
  const until = Date.now() + 10_000;
  while (Date.now() < until && !/State:\s+Z|^$/.test(procStatus(worker))) await new Promise((r) => setTimeout(r, 50));
  // Gone (or a zombie of init's), having said why, and with no unhandled error on stderr.
  expect(procStatus(worker)).toMatch(/State:\s+Z|^$/);
  const said = gate.lines.filter((l) => l.pid === worker).map((l) => l.msg);
  expect(said).toContain('a message to the cluster primary failed');
  expect(said).toContain('cluster primary gone; draining this worker');
  expect(gate.stderr()).not.toMatch(/Unhandled 'error' event|EPIPE/);
}, 30_000);

function procStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return '';
  }
}
