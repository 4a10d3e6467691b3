/**
 * What the primary asks of a worker that is still starting — a reload on SIGHUP, a drain on SIGTERM — is
 * sent once that worker has started (src/cluster/worker-slots.ts). A black-box probe killed a worker and sent
 * SIGHUP while its replacement started (a slow revocation feed widens that window): the replacement never
 * reloaded, so a key removed from the jwks_file stayed accepted on it for good; a SIGTERM in the same window
 * left it serving new connections until the primary killed it after grace + 5 s (exit 1).
 */
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jwksOf } from '../fixtures/keys.ts';
import { send, spawnGate, startRecordingUpstream, tokenNow, writeGateConfig, type GateProcess, type RecordingUpstream } from '../fixtures/servers.ts';

let up: RecordingUpstream;
let feed: Server;
let feedUrl = '';
/** How long the revocation feed waits before it answers: a worker's start waits for its first answer. */
let feedDelayMs = 0;
const dirs: string[] = [];
const pids: number[] = [];

beforeAll(async () => {
  up = await startRecordingUpstream();
  feed = createServer((_req, res) => void setTimeout(() => res.writeHead(200, { 'content-type': 'application/jsonl' }).end(''), feedDelayMs));
  await new Promise<void>((r) => feed.listen(0, '127.0.0.1', r));
  feedUrl = `http://127.0.0.1:${(feed.address() as AddressInfo).port}/revocations.jsonl`;
});
afterAll(async () => {
  for (const pid of pids) if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
  feed?.closeAllConnections();
  await new Promise((r) => feed?.close(r));
  await up?.close();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children = (pid: number): number[] => readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
const EARLY = 'worker started; sending what was asked of it while it started';

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** Kills one worker; resolves once its replacement is forked and still starting (waiting on the slow feed). */
async function replaceOneWorker(gate: GateProcess): Promise<void> {
  const before = children(gate.child.pid!);
  pids.push(...before);
  feedDelayMs = 2_500;
  process.kill(before[0]!, 'SIGKILL');
  await until(() => children(gate.child.pid!).some((p) => !before.includes(p)), 5_000, 'the replacement worker');
  pids.push(...children(gate.child.pid!));
  await sleep(300); // forked, and waiting for its first revocation sync
}

describe('a worker still starting', () => {
  it('reloads once started when SIGHUP came meanwhile: a key removed from jwks_file is refused by every worker', async () => {
    const cfg = await writeGateConfig(up.url, (c) => {
      c.workers = 2;
      c.revocation = { url: feedUrl, poll_interval: '1s', timeout: '5s', max_stale: '30s' };
    });
    dirs.push(cfg.dir);
    feedDelayMs = 0;
    const gate = await spawnGate(cfg.file);
    try {
      const token = await tokenNow(cfg.keys);
      expect((await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      await replaceOneWorker(gate);
      // Key a leaves the set (only the EdDSA key stays), and the primary is told to reload.
      writeFileSync(cfg.raw.issuers[0].jwks_file, JSON.stringify(jwksOf(cfg.keys.aEd)));
      gate.child.kill('SIGHUP');
      await sleep(200);
      feedDelayMs = 0;
      await until(async () => (await send(gate.adminUrl, '/readyz')).status === 200, 10_000, 'both workers ready');
      await until(() => gate.lines.some((l) => l.msg === EARLY && l.asked.includes('reload')), 5_000, "the replacement's late reload");
      await until(() => new Set(gate.lines.filter((l) => l.msg === 'reload done').map((l) => l.pid)).size === 2, 5_000, 'both workers to reload');
      // Fresh connections spread over both workers: none accepts the removed key.
      const statuses = await Promise.all(Array.from({ length: 30 }, async () => (await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status));
      expect(statuses.filter((s) => s !== 401)).toEqual([]);
    } finally {
      gate.child.kill('SIGTERM');
    }
    expect((await gate.exited).code).toBe(0);
  }, 40_000);

  it('drains once started when SIGTERM came meanwhile: the cluster stops with exit 0, no worker killed', async () => {
    const cfg = await writeGateConfig(up.url, (c) => {
      c.workers = 2;
      c.revocation = { url: feedUrl, poll_interval: '1s', timeout: '5s', max_stale: '30s' };
      c.shutdown = { grace: '2s' };
    });
    dirs.push(cfg.dir);
    feedDelayMs = 0;
    const gate = await spawnGate(cfg.file);
    await replaceOneWorker(gate);
    const started = Date.now();
    gate.child.kill('SIGTERM');
    await sleep(200);
    feedDelayMs = 0;
    const exit = await gate.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    // Before the fix: "worker did not stop within shutdown.grace + 5 s; killed (SIGKILL)", exit 1 after ~7 s.
    expect(gate.lines.filter((l) => /killed \(SIGKILL\)/.test(String(l.msg)))).toEqual([]);
    expect(gate.lines.some((l) => l.msg === EARLY && l.asked.includes('drain'))).toBe(true);
    expect(Date.now() - started).toBeLessThan(6_000);
  }, 40_000);
});
