/**
 * Log destinations that fail under a running gate (a probe by an operator's first week):
 * - a full disk (here /dev/full, ENOSPC): said on stderr, and SIGTERM still ends the process — it
 *   used to hang for good in SonicBoom's synchronous exit flush, which retries every error;
 * - a named pipe whose reader goes away (a log shipper restarted): pino turns every later write into
 *   a no-op, which used to be silent; now said on stderr, counted as dropped lines, and the pipe is
 *   opened again once a reader is back (it used to stay dropped until a restart);
 * - a named pipe nothing reads yet: refused at start by name (the open used to wait for a reader,
 *   on the thread pool's only thread, with no output);
 * - with workers, the primary's own lines reach the file within about a second, not at exit.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, createReadStream, openSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { serveToFile } from '../fixtures/audit-gate.ts';
import { runCli } from '../fixtures/cli.ts';
import { freePort } from '../fixtures/ports.ts';
import { CLI, parseMetrics, send, startRecordingUpstream, tokenNow, writeGateConfig, type RecordingUpstream } from '../fixtures/servers.ts';

let up: RecordingUpstream;
const dirs: string[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  up = await startRecordingUpstream();
});
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
afterAll(async () => {
  await up?.close();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function config(patch: (c: Record<string, any>) => void) {
  const cfg = await writeGateConfig(up.url, patch);
  dirs.push(cfg.dir);
  return cfg;
}

function serve(file: string): { child: ChildProcess; stderr: () => string; exited: Promise<{ code: number | null; at: number }> } {
  const child = spawn(process.execPath, [CLI, 'serve', '-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; at: number }>((r) => child.once('exit', (code) => r({ code, at: Date.now() })));
  return { child, stderr: () => err, exited };
}

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('a log destination that fails', () => {
  it('a full disk (/dev/full): said on stderr; SIGTERM still ends the process, exit 0', async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const { file, keys } = await config((c) => {
      c.log = { level: 'info', destination: '/dev/full' };
      c.listen.port = port;
      c.admin.listen.port = adminPort;
    });
    const g = serve(file);
    await until(async () => (await send(`http://127.0.0.1:${adminPort}`, '/readyz').catch(() => ({ status: 0 }))).status === 200, 20_000, 'the gate');
    const token = await tokenNow(keys);
    for (let i = 0; i < 20; i++) expect((await send(`http://127.0.0.1:${port}`, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    await until(() => g.stderr().includes('the log destination failed: a write failed (ENOSPC)'), 5_000, 'the warning');
    const asked = Date.now();
    g.child.kill('SIGTERM');
    const { code, at } = await g.exited;
    expect(code).toBe(0);
    expect(at - asked).toBeLessThan(10_000);
  }, 40_000);

  it('stdout a pipe or /dev/null (no fsync there): SIGTERM ends it with no warning, its last line written', async () => {
    // A known admin port: with stdout at /dev/null nothing says the gate is serving (its signal handlers in place) but /readyz.
    const adminPort = await freePort();
    const { file } = await config((c) => {
      c.admin.listen.port = adminPort;
    });
    for (const out of ['pipe', 'devnull'] as const) {
      const fd = out === 'pipe' ? 'pipe' : openSync('/dev/null', 'w');
      const child = spawn(process.execPath, [CLI, 'serve', '-c', file], { stdio: ['ignore', fd, 'pipe'] });
      children.push(child);
      if (typeof fd === 'number') closeSync(fd);
      let out1 = '';
      let err = '';
      child.stdout?.setEncoding('utf8').on('data', (d: string) => (out1 += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      const exited = once(child, 'exit');
      // The gate is serving once its admin port answers; the started line gives the port only on a pipe.
      await until(() => out === 'devnull' || out1.includes('"jitgate started"'), 20_000, 'the started line');
      if (out === 'devnull') await until(async () => (await send(`http://127.0.0.1:${adminPort}`, '/readyz').catch(() => ({ status: 0 }))).status === 200, 20_000, 'the gate');
      child.kill('SIGTERM');
      expect(await exited).toEqual([0, null]);
      // fsync on a pipe, a socket, a terminal or /dev/null is EINVAL after every byte was written: that
      // was warned about as "lines still pending are dropped" at every shutdown.
      expect(err).toBe('');
      if (out === 'pipe') expect(out1.trimEnd().split('\n').at(-1)).toContain('"msg":"stopped"');
    }
  }, 40_000);

  it('stdout and stderr both pipes whose reader went away (`2>&1 | head -n 1`): the gate serves on, and SIGTERM ends it, exit 0', async () => {
    const { file, keys } = await config((c) => {
      c.log = { level: 'info', destination: 'stdout', audit: true };
    });
    const child = spawn(process.execPath, [CLI, 'serve', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    const exited = once(child, 'exit');
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    await until(() => out.includes('"jitgate started"'), 20_000, 'the started line');
    const started = JSON.parse(out.split('\n').find((l) => l.includes('"jitgate started"'))!) as { proxy: string; admin: string };
    // The reader is gone: both pipes' read ends closed, as when `head` exits.
    child.stdout!.destroy();
    child.stderr!.destroy();
    const token = await tokenNow(keys);
    // Enough audit lines to make the log's writes fail (EPIPE), which the logger then says on stderr, also gone.
    for (let i = 0; i < 60; i++) expect((await send(started.proxy, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_500)); // the log's batch is written every second
    expect((await send(started.proxy, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect(child.exitCode).toBeNull();
    child.kill('SIGTERM');
    expect(await exited).toEqual([0, null]);
  }, 40_000);

  it('a named pipe whose reader goes away: said on stderr, lines counted as dropped, the pipe opened again when a reader is back, SIGTERM ends it', async () => {
    const { file, keys, dir } = await config((c) => (c.log = { level: 'info', destination: './shipper.fifo' }));
    const fifo = join(dir, 'shipper.fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = createReadStream(fifo, { encoding: 'utf8' });
    let text = '';
    reader.on('data', (d) => (text += d));
    const g = serve(file);
    await until(() => text.includes('"jitgate started"'), 20_000, 'the started line');
    const started = JSON.parse(text.split('\n').find((l) => l.includes('"jitgate started"'))!) as { proxy: string; admin: string };
    // The shipper stops.
    reader.destroy();
    const token = await tokenNow(keys);
    const dropped = async () => parseMetrics((await send(started.admin, '/metrics')).text).get('jitgate_log_dropped_lines_total') ?? 0;
    await until(
      async () => {
        await send(started.proxy, '/orders/42', { headers: { authorization: `Bearer ${token}` } });
        return g.stderr().includes('its reader went away (EPIPE)') && (await dropped()) > 0;
      },
      10_000,
      'EPIPE to be said and counted',
    );
    // The shipper is back: the pipe is opened again and later lines reach it (they used to be dropped until a restart).
    const again = createReadStream(fifo, { encoding: 'utf8' });
    let after = '';
    again.on('data', (d) => (after += d));
    await until(
      async () => {
        // Another path than before: the old stream's unsent buffer also comes out once a reader is back.
        await send(started.proxy, '/orders/7777', { headers: { authorization: `Bearer ${token}` } });
        return after.includes('"path":"/orders/7777"');
      },
      10_000,
      'audit lines through the reopened pipe',
    );
    expect(g.stderr()).toContain('the log destination has a reader again');
    again.destroy();
    g.child.kill('SIGTERM');
    expect((await g.exited).code).toBe(0);
  }, 40_000);

  it('a named pipe nothing reads yet: serve refuses at start by name, at once (check-config cannot look without ending a live reader)', async () => {
    const { file, dir } = await config((c) => (c.log = { level: 'info', destination: './nobody.fifo' }));
    execFileSync('mkfifo', [join(dir, 'nobody.fifo')]);
    const message = `log.destination: ${join(dir, 'nobody.fifo')} is a named pipe that nothing reads yet; start its reader (the log shipper) first`;
    const served = await runCli(['serve', '-c', file]);
    expect([served.code, served.stderr]).toEqual([1, `jitgate serve: ${message}\n`]);
    expect((await runCli(['check-config', '-c', file])).code).toBe(0);
  });
});

describe('workers: 2', () => {
  it("the primary's own lines reach the file within about a second (a reload), not at exit", async () => {
    const { file, dir } = await config((c) => {
      c.log = { level: 'info', destination: './cluster.log' };
      c.workers = 2;
    });
    const log = join(dir, 'cluster.log');
    const g = await serveToFile(file, log, 0);
    children.push(g.child);
    const primary = g.child.pid;
    g.child.kill('SIGHUP');
    await until(async () => (await readFile(log, 'utf8')).split('\n').some((l) => l.includes('"reload requested"') && l.includes(`"pid":${primary},`)), 5_000, "the primary's line");
    g.child.kill('SIGTERM');
    await once(g.child, 'exit');
  }, 40_000);
});
