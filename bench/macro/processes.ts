/**
 * Child processes of a run: the upstream and the baseline proxy (forked, report their port over
 * IPC) and jitgate itself (`jitgate serve -c FILE`, exactly as an operator starts it). Every child
 * runs on the same Node binary as the bench (Node 24 from node_modules when started through npm).
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import type { Server } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HERE = fileURLToPath(new URL('./', import.meta.url));

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly port: number;
}

/** Forks a bench helper that sends `{port}` once listening. */
export async function forkServer(name: string, script: string, args: readonly string[] = [], nodeFlags: readonly string[] = []): Promise<Child> {
  const proc = fork(HERE + script, [...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [...nodeFlags] });
  const [msg] = (await Promise.race([once(proc, 'message'), once(proc, 'exit').then(() => Promise.reject(new Error(`${name} exited before listening`)))])) as [{ port: number }];
  return { name, proc, port: msg.port };
}

/**
 * The forked side of forkServer: listens on a free loopback port and sends `{port}` once
 * listening; exits with the runner, and cleanly on SIGTERM so that --cpu-prof writes its profile.
 */
export function serveForRunner(server: Server): void {
  server.listen(0, '127.0.0.1', () => {
    process.send?.({ port: (server.address() as AddressInfo).port });
  });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}

/** Ports the gate will be told to use: bound on 0 by the OS, then released (loopback only). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = createServer();
      s.listen(0, '127.0.0.1');
      await once(s, 'listening');
      return s;
    }),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export interface GateProcess {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** stderr so far (startup errors). */
  stderr(): string;
}

/**
 * `jitgate serve -c file`; `nodeFlags` such as `--cpu-prof` go to the gate's node. `root` is the
 * jitgate checkout to run (default this one; `--jitgate DIR` compares another branch or commit).
 */
export interface SpawnGateOptions {
  readonly nodeFlags?: readonly string[];
  /** The checkout whose bin/jitgate.js runs (default this one). */
  readonly root?: string;
  /** Cores to start on (taskset list form); the gate sizes itself for them. */
  readonly cpus?: string;
  /** 'pipe' when the caller reads what node writes there (V8's --trace-gc-nvp lines); else ignored. */
  readonly stdout?: 'pipe' | 'ignore';
}

export function spawnGate(configFile: string, opts: SpawnGateOptions = {}): GateProcess {
  const argv = [...(opts.nodeFlags ?? []), join(opts.root ?? ROOT, 'bin/jitgate.js'), 'serve', '-c', configFile];
  const stdio: ['ignore', 'pipe' | 'ignore', 'pipe'] = ['ignore', opts.stdout ?? 'ignore', 'pipe'];
  // taskset execs node in place: the pid is the gate's, and the gate sees only `cpus` from its first instruction.
  const proc = opts.cpus === undefined ? spawn(process.execPath, argv, { stdio }) : spawn('taskset', ['-c', opts.cpus, process.execPath, ...argv], { stdio });
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  return { proc, pid: proc.pid!, stderr: () => err };
}

/** Polls the admin /readyz until 200 (keys and revocation loaded) or the deadline. */
export async function waitReady(gate: GateProcess, adminPort: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (gate.proc.exitCode !== null) throw new Error(`jitgate exited with ${gate.proc.exitCode}: ${gate.stderr()}`);
    try {
      const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      await r.arrayBuffer();
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`jitgate not ready within ${timeoutMs} ms: ${gate.stderr()}`);
}

/** SIGTERM (graceful drain), then SIGKILL if it has not exited within `graceMs`. */
export async function stopProcess(proc: ChildProcess, graceMs = 5_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** pid and all its descendants (cluster workers, perf), from /proc; [pid] where /proc is missing. */
function treePids(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [pid];
  }
  const children = new Map<number, number[]>();
  for (const d of entries) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

/** The first of `candidates` that runs with `args` (a version flag), or undefined: a peer binary is optional. */
export function findBinary(candidates: readonly string[], args: readonly string[]): string | undefined {
  for (const b of candidates) if (spawnSync(b, args).status === 0) return b;
  return undefined;
}

/** Pins pid, its threads and its descendants to `cpus` (taskset list form, e.g. "0" or "0,1"); for --pin. */
export function pinTree(pid: number, cpus: string): void {
  for (const p of treePids(pid)) {
    const r = spawnSync('taskset', ['-a', '-pc', cpus, String(p)], { stdio: 'ignore' });
    if (r.status !== 0 && r.error !== undefined) throw new Error(`--pin needs taskset (util-linux): ${r.error.message}`);
  }
}

/** Busy CPU seconds of the whole machine so far (all cores), from /proc/stat. */
export function machineBusySeconds(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal …: busy = all but idle and iowait
    return (f.reduce((a, b) => a + b, 0) - (f[3] ?? 0) - (f[4] ?? 0)) / 100;
  } catch {
    return 0;
  }
}

/** Resident set size in bytes of pid and its descendants. */
export function rssOfTree(pid: number): number {
  let total = 0;
  for (const p of treePids(pid)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** CPU seconds (user + system) used so far by pid, its live descendants and the children it reaped; clock ticks at the usual 100 Hz. */
export function cpuSecondsOfTree(pid: number): number {
  let total = 0;
  for (const p of treePids(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // after "pid (comm) ", utime and stime are the 12th and 13th fields; for the root also
      // cutime and cstime, the CPU of children it has already reaped (a finished load child).
      total += (Number(f[11]) + Number(f[12]) + (p === pid ? Number(f[13]) + Number(f[14]) : 0)) / 100;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}
