/**
 * Signals other than a running gate's SIGTERM/SIGINT/SIGHUP (src/process-signals.ts), on real
 * `jitgate serve` processes, and a log destination that cannot be opened (a lifecycle review):
 * - SIGUSR1 opens the log file again (logrotate) and never starts node's inspector;
 * - SIGUSR2 is a line, not a death;
 * - while the gate starts (here: a JWKS URL that never answers), SIGHUP is a line and SIGTERM ends it
 *   at once with 143 and a line;
 * - a log destination the process cannot open is a start-up error naming `log.destination`, also
 *   for root (permission bits said yes under /proc and /sys, and the gate served without writing).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, send, startRecordingUpstream, tokenNow, writeGateConfig, type RecordingUpstream } from '../fixtures/servers.ts';

let up: RecordingUpstream;
const dirs: string[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  up = await startRecordingUpstream();
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await up?.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

interface Serve {
  readonly child: ChildProcess;
  output(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/** `jitgate serve -c file`, its stdout and stderr collected together. */
function serve(file: string): Serve {
  const child = spawn(process.execPath, [CLI, 'serve', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, at: performance.now() })));
  return { child, output: () => out, exited };
}

/** Whether process `pid` has `path` open (Linux /proc). */
function holds(pid: number, path: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === path;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

const lines = (path: string): Record<string, any>[] =>
  existsSync(path)
    ? readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, any>)
    : [];

describe('SIGUSR1 and SIGUSR2 on a running gate', () => {
  it('SIGUSR1 and SIGHUP reopen the log file after a rename (USR1 starts no inspector), a failed reopen says so; SIGUSR2 is ignored', async () => {
    let log = '';
    const cfg = await writeGateConfig(up.url, (c) => (c.log = { level: 'info', destination: (log = join(dirname(c.revocation.file), 'gate.log')) }));
    dirs.push(cfg.dir);
    const gate = serve(cfg.file);
    await until(() => lines(log).some((l) => l.msg === 'jitgate started'), 15_000, 'the start line');
    const started = lines(log).find((l) => l.msg === 'jitgate started')!;
    const token = await tokenNow(cfg.keys);
    const get = (path: string) => send(started.proxy, path, { headers: { authorization: `Bearer ${token}` } });

    expect((await get('/orders/42/before')).status).toBe(200);
    await until(() => lines(log).some((l) => l.path === '/orders/42/before'), 5_000, 'the first audit line');
    renameSync(log, `${log}.1`);
    gate.child.kill('SIGUSR1');
    await until(() => lines(log).some((l) => l.msg === 'log file reopened'), 5_000, 'the reopened file');
    expect((await get('/orders/42/after')).status).toBe(200);
    await until(() => lines(log).some((l) => l.path === '/orders/42/after'), 5_000, 'the audit line in the new file');
    expect(lines(`${log}.1`).some((l) => l.path === '/orders/42/after')).toBe(false);
    expect(lines(`${log}.1`).some((l) => l.path === '/orders/42/before')).toBe(true);

    // SIGHUP reopens it too (and reloads): the signal that reaches a gate run with --disable-sigusr1.
    renameSync(log, `${log}.2`);
    gate.child.kill('SIGHUP');
    await until(() => lines(log).some((l) => l.msg === 'log file reopened'), 5_000, 'the file reopened on SIGHUP');
    expect([...lines(`${log}.2`), ...lines(log)].some((l) => l.msg === 'reload requested')).toBe(true);

    // A path that cannot be opened any more: said as a failure, in the file still in use.
    renameSync(log, `${log}.3`);
    mkdirSync(log);
    gate.child.kill('SIGHUP');
    await until(() => lines(`${log}.3`).some((l) => l.msg === 'log reopen failed; lines go on to the file open before'), 5_000, 'the failed reopen line');
    // (The file's own 'log file reopened' line is the one from the SIGHUP before; none follows the failure.)
    const msgs = lines(`${log}.3`).map((l) => l.msg as string);
    expect(msgs.lastIndexOf('log file reopened')).toBeLessThan(msgs.indexOf('log reopen failed; lines go on to the file open before'));
    rmdirSync(log);

    gate.child.kill('SIGUSR2');
    await until(() => lines(`${log}.3`).some((l) => l.signal === 'SIGUSR2'), 5_000, 'the SIGUSR2 line');
    expect((await get('/orders/42/still')).status).toBe(200);
    // Node's default for SIGUSR1 prints this when it opens the inspector.
    expect(gate.output()).not.toMatch(/Debugger listening/);

    gate.child.kill('SIGTERM');
    expect((await gate.exited).code).toBe(0);
  });
});

describe('node --disable-sigusr1 (the package scripts, the image)', () => {
  it('a SIGUSR1 from the process\'s first moment opens no inspector and stops nothing', async () => {
    const cfg = await writeGateConfig(up.url);
    dirs.push(cfg.dir);
    const child = spawn(process.execPath, ['--disable-sigusr1', CLI, 'serve', '-c', cfg.file], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    // (Not before node has set the signal aside, ignored or caught, as the kernel shows: until then any
    // program dies of it, and a loaded machine can take longer than any fixed wait to get there.)
    const usr1 = 1n << 9n; // SIGUSR1 is signal 10: bit 9 of the masks
    const setAside = (): boolean => {
      const status = existsSync(`/proc/${child.pid}/status`) ? readFileSync(`/proc/${child.pid}/status`, 'utf8') : '';
      const mask = (name: string): bigint => BigInt(`0x${new RegExp(`^${name}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1] ?? '0'}`);
      return ((mask('SigIgn') | mask('SigCgt')) & usr1) !== 0n;
    };
    await until(setAside, 10_000, 'node setting SIGUSR1 aside');
    for (let i = 0; i < 5; i++) {
      child.kill('SIGUSR1');
      await sleep(50);
    }
    await until(() => out.includes('jitgate started'), 15_000, 'the start line');
    child.kill('SIGUSR1');
    await sleep(200);
    expect(child.exitCode).toBe(null);
    expect(out).not.toMatch(/Debugger listening/);
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  });
});

describe('signals while the gate starts', () => {
  let jwks: Server;
  let jwksUrl: string;
  const held = new Set<Socket>();
  let connections = 0;

  beforeAll(async () => {
    // Accepts and never answers: the start waits on it for jwks_timeout.
    jwks = createServer((s) => {
      connections++;
      held.add(s);
      s.on('error', () => {});
      s.on('close', () => held.delete(s));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
  });
  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => jwks?.close(() => r()));
  });

  async function starting(logFile?: (dir: string) => string): Promise<Serve> {
    const cfg = await writeGateConfig(up.url, (c) => {
      c.issuers[0] = { issuer: c.issuers[0].issuer, jwks_uri: jwksUrl, jwks_timeout: '3s' };
      c.log = { level: 'info', destination: logFile === undefined ? 'stdout' : logFile(dirname(c.revocation.file)) };
    });
    dirs.push(cfg.dir);
    const before = connections;
    const gate = serve(cfg.file);
    // The gate asked for its keys: past its config, its signal handling is in place, it serves nothing yet.
    await until(() => connections > before, 15_000, 'the key fetch');
    return gate;
  }

  it('SIGHUP is a line, not a death; the gate then starts', async () => {
    const gate = await starting();
    gate.child.kill('SIGHUP');
    await until(() => gate.output().includes('jitgate started'), 15_000, 'the start line');
    expect(gate.output()).toMatch(/"signal":"SIGHUP","msg":"reload ignored: jitgate is still starting"/);
    gate.child.kill('SIGTERM');
    expect((await gate.exited).code).toBe(0);
  });

  it('a log rotated while starting (rename, then SIGHUP) is reopened once the gate starts', async () => {
    let log = '';
    const gate = await starting((dir) => (log = join(dir, 'gate.log')));
    // The gate holds the file open (serve creates it at its start check, before the logger opens it: a
    // rename before that renamed a file nobody was writing, and the test failed now and then).
    await until(() => holds(gate.child.pid!, log), 5_000, 'the gate holding its log file open');
    renameSync(log, `${log}.1`);
    gate.child.kill('SIGHUP');
    await until(() => lines(log).some((l) => l.msg === 'log file reopened'), 15_000, 'the reopened file');
    // The renamed file's last chunk is written by its closing destination, which may finish after the new
    // file already shows its first line (both writes go through the thread pool): waited for, not read at once.
    await until(() => lines(`${log}.1`).some((l) => l.msg === 'jitgate started'), 5_000, 'the start line in the renamed file');
    gate.child.kill('SIGTERM');
    expect((await gate.exited).code).toBe(0);
    expect(lines(log).some((l) => l.msg === 'stopped')).toBe(true);
  });

  it('SIGTERM ends it at once with 143 and a line saying nothing was served', async () => {
    const gate = await starting();
    const sent = performance.now();
    gate.child.kill('SIGTERM');
    const { code, at } = await gate.exited;
    expect(code).toBe(143);
    expect(at - sent).toBeLessThan(2_000); // not the 3 s key fetch, nor a drain
    expect(gate.output()).toMatch(/"signal":"SIGTERM","msg":"stopped while starting; nothing was served"/);
    expect(gate.output()).not.toContain('jitgate started');
  });
});

describe('a log destination that cannot be opened', () => {
  it.each(['/proc/jitgate-no-such/gate.log', '/sys/jitgate-gate.log'])('%s: exit 1 naming log.destination, nothing served', async (destination) => {
    const cfg = await writeGateConfig(up.url, (c) => (c.log = { level: 'info', destination }));
    dirs.push(cfg.dir);
    const gate = serve(cfg.file);
    const { code } = await gate.exited;
    expect(code).toBe(1);
    expect(gate.output()).toMatch(new RegExp(`^jitgate serve: log\\.destination: ${destination.replace(/[/.]/g, '\\$&')}`, 'm'));
    expect(gate.output()).not.toMatch(/\n\s+at /); // no stack trace
  });
});
