/**
 * A gate whose log destination stops reading (stdout piped to a process that hung, a stalled log
 * driver) must still stop on SIGTERM: the final flush is bounded, the exit flush skips a
 * destination that is stuck, and a second signal exits at once (operations.md, "Shutdown").
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestKeys } from '../fixtures/gate.ts';
import { FINAL_FLUSH_MS, SECOND_SIGNAL_FLUSH_MS } from '../../src/observability/logger.ts';
import { answerOk, send, spawnGateStuckStdout, startRecordingUpstream, tokenNow, untilDraining, writeGateConfig, type RecordingUpstream } from '../fixtures/servers.ts';

let up: RecordingUpstream;
const dirs: string[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  up = await startRecordingUpstream();
});
afterAll(async () => {
  for (const c of children) if (c.pid !== undefined && existsSync(`/proc/${c.pid}`)) c.kill('SIGKILL');
  await up?.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

interface Stuck {
  readonly child: ChildProcess;
  readonly url: string;
  readonly adminUrl: string;
  readonly keys: TestKeys;
  /** Resolves on exit, with the ms since the first signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
  signal(sig: NodeJS.Signals): void;
}

async function startWithStuckStdout(grace: string): Promise<Stuck> {
  const { dir, file, keys } = await writeGateConfig(up.url, (c) => {
    c.shutdown = { grace };
  });
  dirs.push(dir);
  const g = await spawnGateStuckStdout(file);
  children.push(g.child);
  let sentAt = 0;
  return {
    child: g.child,
    url: g.started.proxy!,
    adminUrl: g.started.admin!,
    keys,
    exited: g.exited.then(({ code, signal, at }) => ({ code, signal, ms: at - sentAt })),
    signal(sig) {
      sentAt ||= Date.now();
      g.child.kill(sig);
    },
  };
}

/**
 * Allowed requests whose audit lines (each names its ~1.5 KB path) add up to ~1.5 MB: far more
 * than the pipe buffer and what the test's own stream buffers before it stops reading.
 */
async function fillThePipe(g: Stuck): Promise<void> {
  const token = await tokenNow(g.keys);
  const path = `/orders/42/${'x'.repeat(1500)}`;
  for (let i = 0; i < 10; i++) {
    await Promise.all(Array.from({ length: 100 }, () => send(g.url, path, { headers: { authorization: `Bearer ${token}` } })));
  }
}

describe('a gate whose stdout nobody reads', () => {
  it('still drains and exits 0 on SIGTERM, within the grace and a bounded final flush', async () => {
    const g = await startWithStuckStdout('1s');
    await fillThePipe(g);
    g.signal('SIGTERM');
    const r = await g.exited;
    expect(r.signal).toBe(null);
    expect(r.code).toBe(0);
    // grace 1 s + the bounded final flush (FINAL_FLUSH_MS); before the fix it never exited.
    expect(r.ms).toBeLessThan(1_000 + FINAL_FLUSH_MS + 3_000);
  }, 60_000);

  // A probe: the reader came back 2.6 s after SIGTERM, just past the final flush's wait; the write still in
  // flight then finished into a destroyed SonicBoom, which threw (TypeError in mergeBuf) and the gate exited 1.
  it('exits 0 when the reader comes back after the final flush gave the destination up', async () => {
    const g = await startWithStuckStdout('1s');
    await fillThePipe(g);
    g.signal('SIGTERM');
    await new Promise((r) => setTimeout(r, 1_000 + FINAL_FLUSH_MS + 600));
    g.child.stdout!.resume();
    const r = await g.exited;
    expect([r.code, r.signal]).toEqual([0, null]);
  }, 60_000);

  it('exits at once on a second signal, even with the final flush stuck', async () => {
    const g = await startWithStuckStdout('30s');
    await fillThePipe(g);
    const token = await tokenNow(g.keys);
    // A request held open keeps the 30 s drain going; the second signal must not wait for it.
    up.respond = (req, res, rec) => (req.headers['x-hold'] === undefined ? answerOk(req, res, rec) : undefined);
    const before = up.requests.length;
    const held = send(g.url, '/orders/42', { headers: { authorization: `Bearer ${token}`, 'x-hold': '1' } }).catch(() => undefined);
    await up.waitFor(before + 1);
    g.signal('SIGTERM');
    const first = Date.now();
    await untilDraining(g.adminUrl);
    const draining = Date.now() - first;
    g.signal('SIGTERM');
    const r = await g.exited;
    up.respond = answerOk;
    await held;
    expect(r.code).toBe(143);
    expect(r.ms).toBeLessThan(draining + SECOND_SIGNAL_FLUSH_MS + 3_000);
  }, 60_000);
});
