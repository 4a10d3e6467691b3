/**
 * Paired A/B of several servers in the same minutes (issue 20 item 2): the plain proxy and any
 * number of jitgate checkouts or config variants, all started once, then loaded in short slices in
 * rotating order, each slice after its own warm-up. What it reports is **server CPU µs per request**
 * (user + system of the serving process tree, from /proc) per slice, and per server the median and
 * range over the slices, plus each server's median ratio to the first one over the rounds (both
 * measured within seconds of each other). On a machine loaded by other work, req/s moves with
 * whatever else is scheduled; CPU per request moves much less, and adjacent slices cancel drift.
 *
 *   npm run bench:ab -- [--pin] [--together] [--rounds 6] [--duration 3] [--warmup 1] [--connections 50] [--row ID] [--gc] SERVER[#ROW][~FLAGS]...
 *
 * SERVER is `plain[:mode][@DIR]` (bench/macro/baseline-proxy.ts of checkout DIR, default this one, in
 * `mode`, default dispatch), `sync-gate` (the minimal synchronous-verify Node gate, sync-verify.ts, the
 * cold path's reference) or `gate[:variant][@DIR]`: `jitgate serve`
 * from checkout DIR (default this one) with a bench config variant (scenarios.ts VARIANTS; default
 * the row's own variant), e.g. `plain gate gate@/tmp/jitgate-parent gate:no-audit`.
 * Each server gets the request of an `npm run bench` row (`--list`): `#ROW` after its spec, else
 * `--row` (default `allow-hot`, the cached hot token), and must answer it with that row's status. The
 * cold path against its reference: `--row allow-10k-verify sync-gate gate`; two paths of one gate:
 * `gate#deny-403 gate:verify#deny-401-bad-signature`.
 *
 * `--gc` starts the servers with `--trace-gc-nvp` and reports per request what V8 says about each
 * collection in the measured slices: scavenges and mark-compacts (per 100,000 requests), the
 * main-thread pause, and bytes allocated, copied within the young generation and promoted to old
 * space. The byte counts do not depend on what else the machine runs, unlike every time figure.
 * `--strace` adds one slice per server under `strace -c -f` and prints system calls per request
 * (strace slows the server down, so the counts, not the times, are the point).
 * `--together` loads every server at once instead of one after another (with `--pin`, all on core 0):
 * each round's slices then see the same machine speed, which on this VM drifts ±30 % between
 * seconds. What it measures is each server's CPU per request while sharing its core, so compare
 * servers with each other in one run, not with a run without it. The second process reads 2-3 %
 * cheaper in A/A runs, so a few-per-cent question needs both orders: B/A = sqrt(r(A B) / r(B A))
 * (bench/README.md, "Co-scheduled pairs"). The ratio column is then the median over pairs of rounds.
 * `--node-flags "--trace-deopt …"` go to every server's node, `SERVER~FLAG,FLAG` to that one's alone
 * (e.g. `gate~--max-semi-space-size=8`); with `--stdout-dir DIR` each server's
 * stdout (where V8's traces go) is kept as DIR/<n>.out.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AUDIENCE, ISSUER, makeFixtures, writeGateConfig } from './fixtures.ts';
import { runHttpLoad } from './http-load.ts';
import { cpuSecondsOfTree, forkServer, freePorts, pinTree, spawnGate, stopProcess, waitReady } from './processes.ts';
import { allScenarios, load as scenarioLoad, VARIANTS, type Scenario, type VariantName } from './scenarios.ts';
import { median } from '../median.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HERE = fileURLToPath(new URL('./', import.meta.url));

const { values: a, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    pin: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '6' },
    duration: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    connections: { type: 'string', default: '50' },
    row: { type: 'string', default: 'allow-hot' },
    gc: { type: 'boolean', default: false },
    strace: { type: 'boolean', default: false },
    'node-flags': { type: 'string', default: '' },
    'stdout-dir': { type: 'string' },
    together: { type: 'boolean', default: false },
  },
});
if (positionals.length === 0) throw new Error('usage: npm run bench:ab -- [--pin] [--together] [--rounds n] [--duration s] [--warmup s] [--row ID] [--gc] plain|sync-gate|gate[:variant][@DIR] [#ROW] ...');
const rounds = Number(a.rounds);
if (a.together && rounds % 2 !== 0) throw new Error('--together needs an even --rounds: the start order alternates');
const duration = Number(a.duration);
const warmup = Number(a.warmup);
const connections = Number(a.connections);
const together = a.together;
scenarioLoad.connections = connections; // the rotating rows give each connection its own slice of the tokens
const log = (line: string): void => void process.stderr.write(`${line}\n`);

interface Server {
  readonly label: string;
  readonly row: Scenario;
  readonly pid: number;
  readonly port: number;
  readonly proc: ChildProcess;
  /** --trace-gc lines seen so far. */
  /** Running totals from V8's --trace-gc-nvp lines. */
  gc: GcTotals;
}

interface GcTotals {
  scavenges: number;
  markCompacts: number;
  /** Main-thread pause, ms. */
  pauseMs: number;
  /** Bytes allocated, promoted to old space, and copied within the young generation. */
  allocated: number;
  promoted: number;
  copied: number;
}

const noGc = (): GcTotals => ({ scavenges: 0, markCompacts: 0, pauseMs: 0, allocated: 0, promoted: 0, copied: 0 });
const nvp = (l: string, k: string): number => {
  const m = new RegExp(` ${k}=([\\d.]+)`).exec(l);
  return m ? Number(m[1]) : 0;
};

function countGc(s: Server, proc: ChildProcess): void {
  if (proc.stdout === null) return;
  if (a['stdout-dir'] !== undefined) proc.stdout.pipe(createWriteStream(join(a['stdout-dir'], `${s.label.replace(/[^\w.-]+/g, '_')}.out`)));
  createInterface({ input: proc.stdout }).on('line', (l) => {
    const kind = / gc=(\w+)/.exec(l)?.[1];
    if (kind === undefined) return;
    const g = s.gc;
    if (kind === 's') g.scavenges++;
    else if (kind === 'mc' || kind === 'ms') g.markCompacts++;
    g.pauseMs += nvp(l, 'pause');
    g.allocated += nvp(l, 'allocated');
    g.promoted += nvp(l, 'promoted');
    g.copied += nvp(l, 'new_space_survived');
  });
}

const scenarios = new Map(allScenarios().map((x) => [x.id, x]));
/** SERVER#ROW → the spec and the bench row whose request it gets. */
const specs = positionals.map((full) => {
  // SERVER[#ROW][~FLAG,FLAG…]: node flags for this server alone, after the shared ones.
  const [p, own = ''] = full.split('~') as [string, string | undefined];
  const [spec, id = a.row] = p.split('#') as [string, string | undefined];
  const row = scenarios.get(id);
  if (row === undefined || row.kind !== 'http' || row.request === undefined) throw new Error(`${p}: ${id} is not an HTTP row of npm run bench (--list)`);
  return { spec, row, nodeFlags: own.split(',').filter(Boolean) };
});
const fx = await makeFixtures({ alg: 'ES256', rotating: specs.some((x) => x.row.id.includes('10k')) ? 10_000 : 0, ttlSeconds: 4 * 3600 });
const flags = [...(a.gc ? ['--trace-gc-nvp'] : []), ...a['node-flags'].split(' ').filter(Boolean)];
const upstream = await forkServer('upstream', 'upstream.ts');
if (a.pin) {
  pinTree(process.pid, '1');
  pinTree(upstream.proc.pid!, '1');
}
const servers: Server[] = [];
try {
  for (const [i, { spec, row, nodeFlags }] of specs.entries()) {
    const label = `${i}:${spec}${row.id === a.row ? '' : `#${row.id}`}${nodeFlags.length === 0 ? '' : ` ${nodeFlags.join(' ')}`}`;
    const p = /^plain(?::([\w-]+))?(?:@(.+))?$/.exec(spec);
    // sync-gate is baseline-proxy.ts of this checkout in its sync-verify mode.
    const plain = spec === 'sync-gate' ? { mode: 'sync-verify', dir: undefined } : p ? { mode: p[1] ?? 'dispatch', dir: p[2] } : undefined;
    if (plain) {
      const script = plain.dir === undefined ? join(HERE, 'baseline-proxy.ts') : join(resolve(plain.dir), 'bench/macro/baseline-proxy.ts');
      const mode = plain.mode;
      const args = [`http://127.0.0.1:${upstream.port}`, '128', mode, ...(mode === 'sync-verify' ? [fx.jwksPath, ISSUER, AUDIENCE, '/orders/'] : [])];
      const proc = spawn(process.execPath, [...flags, ...nodeFlags, script, ...args], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
      const msg = await new Promise<{ port: number }>((ok, fail) => {
        proc.once('message', (m) => ok(m as { port: number }));
        proc.once('exit', () => fail(new Error('plain proxy exited')));
      });
      const s: Server = { label, row, pid: proc.pid!, port: msg.port, proc, gc: noGc() };
      // Gates start pinned (below); a plain proxy sizes nothing from its cores, so pinning it once up is enough.
      if (a.pin) pinTree(s.pid, '0');
      countGc(s, proc);
      servers.push(s);
    } else {
      const m = /^gate(?::([\w-]+))?(?:@(.+))?$/.exec(spec);
      if (!m) throw new Error(`server ${spec}: expected plain[:mode][@DIR], sync-gate or gate[:variant][@DIR]`);
      const variant = (m[1] ?? (row.server === 'gate' ? row.variant : undefined) ?? 'audit') as VariantName;
      const v = VARIANTS[variant];
      if (v === undefined) throw new Error(`unknown variant ${variant}`);
      const root = m[2] === undefined ? ROOT : resolve(m[2]);
      const [proxy, admin, h, g] = (await freePorts(4)) as [number, number, number, number];
      const file = await writeGateConfig(fx, `ab-${i}-${variant}`, v, { proxy, admin, extAuthzHttp: h, extAuthzGrpc: g }, upstream.port, 1);
      // Pinned from the start, so the gate sizes itself for its one core; stdout carries --gc's trace lines.
      const gate = spawnGate(file, { nodeFlags: [...flags, ...nodeFlags], root, cpus: a.pin ? '0' : undefined, stdout: 'pipe' });
      const s: Server = { label, row, pid: gate.pid, port: proxy, proc: gate.proc, gc: noGc() };
      countGc(s, gate.proc);
      await waitReady(gate, admin, 60_000);
      servers.push(s);
    }
    log(`  ${servers.at(-1)!.label} ready on ${servers.at(-1)!.port}`);
  }

  const cpu: number[][] = servers.map(() => []);
  const rps: number[][] = servers.map(() => []);
  const gc: GcTotals[][] = servers.map(() => []);
  const totals: number[] = servers.map(() => 0);
  const load = (s: Server, durationSec: number) => ({ port: s.port, request: s.row.request!(fx), expectStatus: s.row.expectStatus, connections, pipelining: 1, durationSec, warmupSec: warmup });
  /** One measured load slice of `s`, with what to do just before and after the measured part. */
  const slice = (s: Server, beforeMeasure: () => Promise<void>, afterMeasure: () => Promise<void>) => runHttpLoad({ ...load(s, duration), beforeMeasure, afterMeasure });
  // One unrecorded slice each: fresh processes, and the gate has far more code to compile.
  for (const s of servers) await runHttpLoad(load(s, 1));
  /** One measured slice of server k: CPU µs per request, rate and GC over its measured part. */
  const measure = async (k: number): Promise<string> => {
    const s = servers[k]!;
    let c0 = 0;
    let g0 = noGc();
    let c1 = 0;
    let g1 = noGc();
    const res = await slice(
      s,
      async () => {
        c0 = cpuSecondsOfTree(s.pid);
        g0 = { ...s.gc };
      },
      async () => {
        c1 = cpuSecondsOfTree(s.pid);
        g1 = { ...s.gc };
      },
    );
    if (res.unexpected > 0 || res.errors > 0) log(`  ⚠ ${s.label}: ${res.unexpected} unexpected, ${res.errors} errors ${JSON.stringify(res.statuses)}`);
    const us = ((c1 - c0) * 1e6) / res.total;
    cpu[k]!.push(us);
    rps[k]!.push(res.total / res.seconds);
    const d = (f: (g: GcTotals) => number): number => f(g1) - f(g0);
    gc[k]!.push({ scavenges: d((g) => g.scavenges) * 1e5, markCompacts: d((g) => g.markCompacts) * 1e5, pauseMs: d((g) => g.pauseMs) * 1e3, allocated: d((g) => g.allocated), promoted: d((g) => g.promoted), copied: d((g) => g.copied) });
    totals[k] = (totals[k] ?? 0) + res.total;
    return `${s.label} ${us.toFixed(1)} µs ${Math.round(res.total / res.seconds)}/s`;
  };
  for (let r = 0; r < rounds; r++) {
    if (together) {
      // Every server loaded at once, on the same core(s): each slice sees the same machine speed.
      // The start order alternates, so that no server's load starts first every round. A bias by
      // process remains: in A/A runs of one build the second process read 2-3 % cheaper whatever the
      // order (bench/README.md, "Co-scheduled pairs"); run both server orders and take sqrt(r1 / r2).
      const order = servers.map((_, k) => (r % 2 === 0 ? k : servers.length - 1 - k));
      const line = await Promise.all(order.map((k) => measure(k)));
      log(`  round ${r + 1}: ${line.join(' | ')}`);
      continue;
    }
    // ABBA over pairs of rounds, rotating the start every pair: each server is first, last and in
    // between, and with two servers the order goes AB BA BA AB ...
    const order = servers.map((_, k) => (k + Math.floor(r / 2)) % servers.length);
    if (r % 2 === 1) order.reverse();
    const line: string[] = [];
    for (const k of order) line.push(await measure(k));
    log(`  round ${r + 1}: ${line.join(' | ')}`);
  }

  if (a.strace) {
    for (const s of servers) {
      const file = join(fx.dir, `strace-${s.pid}.txt`);
      let tracer: ChildProcess | undefined;
      const res = await slice(
        s,
        async () => {
          tracer = spawn('strace', ['-c', '-f', '-o', file, '-p', String(s.pid)], { stdio: 'ignore' });
          await new Promise((r) => setTimeout(r, 200));
        },
        async () => {
          const exited = new Promise((r) => tracer!.once('exit', r));
          tracer!.kill('SIGINT');
          await exited;
        },
      );
      const text = await readFile(file, 'utf8');
      const rows: string[] = [];
      for (const l of text.split('\n')) {
        const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/.exec(l);
        if (m && m[2] !== 'total') rows.push(`${m[2]} ${(Number(m[1]) / res.total).toFixed(3)}`);
      }
      log(`  strace ${s.label} (${res.total} requests): ${rows.join(', ')}`);
    }
  }

  const out: string[] = [];
  out.push(`npm run bench:ab -- ${process.argv.slice(2).join(' ')}`);
  out.push('');
  out.push(`| server | CPU µs/req median (range) | × first, paired median (range) | req/s median${a.gc ? ' | scavenges / 100k req | mark-compacts / 100k req | GC pause µs/req | allocated B/req | survived scavenge B/req | promoted B/req' : ''} |`);
  out.push(`|---|--:|--:|--:|${a.gc ? '--:|--:|--:|--:|--:|--:|' : ''}`);
  for (const [k, s] of servers.entries()) {
    const perRound = cpu[k]!.map((x, r) => x / cpu[0]![r]!);
    // --together: the geometric mean of each pair of rounds, one per start order (see above).
    const ratios = together ? perRound.flatMap((x, r) => (r % 2 === 1 ? [Math.sqrt(x * perRound[r - 1]!)] : [])) : perRound;
    // Per-request figures from the sums over all measured slices (a slice holds only a few collections).
    const reqs = totals[k]!;
    const col = (f: (g: GcTotals) => number, digits: number): string => (gc[k]!.reduce((acc, g) => acc + f(g), 0) / reqs).toFixed(digits);
    const gcCols = a.gc ? ` | ${col((g) => g.scavenges, 1)} | ${col((g) => g.markCompacts, 2)} | ${col((g) => g.pauseMs, 2)} | ${col((g) => g.allocated, 0)} | ${col((g) => g.copied, 0)} | ${col((g) => g.promoted, 0)}` : '';
    out.push(`| ${s.label} | ${median(cpu[k]!).toFixed(1)} (${Math.min(...cpu[k]!).toFixed(1)}–${Math.max(...cpu[k]!).toFixed(1)}) | ${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)}) | ${Math.round(median(rps[k]!)).toLocaleString('en-US')}${gcCols} |`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
} finally {
  await Promise.all([...servers.map((s) => stopProcess(s.proc)), stopProcess(upstream.proc)]);
  await rm(fx.dir, { recursive: true, force: true });
}
