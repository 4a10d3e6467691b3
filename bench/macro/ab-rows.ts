/**
 * (`npm run bench:ab` — bench/macro/ab.ts — compares any number of servers on the hot-token request; this one
 * compares two, on any of `npm run bench`'s rows, cold ones included.)
 *
 * Paired server-CPU comparison of two servers on the same rows, in the same minutes: both processes
 * run side by side on core 0 (started pinned, so each sees the one core it gets), the load
 * generator and the upstream on core 1, and short load slices alternate A B B A … on each row. On a
 * machine other work keeps busy, req/s says little; CPU per request of each server, slice against
 * adjacent slice, is what a change is judged by (bench/README.md, "what each change bought").
 *
 *   npx node bench/macro/ab-rows.ts --a DIR|sync-gate [--b DIR|sync-gate] --rows allow-10k-verify,deny-401-bad-signature
 *       [--b-rows deny-403,…] [--slices 8] [--duration 4] [--warmup 2] [--connections 50]
 *
 * DIR is a jitgate checkout (node_modules beside it), e.g. an export of the commit before a change;
 * --b defaults to this checkout. `sync-gate` is the minimal synchronous-verify Node gate
 * (sync-verify.ts), the cold-path target's reference. Each side keeps one process per gate variant
 * for the whole run, so a row sees the state the rows before it left (as in `npm run bench`).
 * `--b-rows` gives B its own row for each of A's (same count), to compare two paths of one gate,
 * e.g. `--a . --rows deny-403 --b-rows deny-401-bad-signature`.
 */
import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AUDIENCE, ISSUER, makeFixtures } from './fixtures.ts';
import { Gates, type RunningGate } from './gates.ts';
import { runHttpLoad } from './http-load.ts';
import { cpuSecondsOfTree, forkServer, pinTree, stopProcess, type Child } from './processes.ts';
import { allScenarios, load, type Scenario } from './scenarios.ts';
import { median } from '../median.ts';

const { values: a } = parseArgs({
  options: {
    a: { type: 'string' },
    b: { type: 'string', default: '.' },
    rows: { type: 'string', default: 'allow-10k-verify' },
    'b-rows': { type: 'string' },
    slices: { type: 'string', default: '8' },
    duration: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
  },
});
if (a.a === undefined) throw new Error('--a DIR|sync-gate is required');
const slices = Number(a.slices);
const duration = Number(a.duration);
const warmup = Number(a.warmup);
load.connections = Number(a.connections);
const log = (s: string): void => void process.stdout.write(`${s}\n`);

const scenarios = new Map(allScenarios().map((s) => [s.id, s]));
function scenario(id: string): Scenario {
  const s = scenarios.get(id);
  if (s === undefined || s.kind !== 'http' || s.server !== 'gate') throw new Error(`${id}: not an HTTP row served by jitgate`);
  return s;
}
const rows = a.rows.split(',').map(scenario);
const bRows = a['b-rows'] === undefined ? rows : a['b-rows'].split(',').map(scenario);
if (bRows.length !== rows.length) throw new Error('--b-rows needs as many rows as --rows');

// Children inherit this affinity, so every server starts seeing one core, as a pinned deployment does.
pinTree(process.pid, '1');
const fx = await makeFixtures({ alg: 'ES256', rotating: [...rows, ...bRows].some((s) => s.id.includes('10k')) ? 10_000 : 0, ttlSeconds: 4 * 3600 });
const upstream = await forkServer('upstream', 'upstream.ts');

interface Side {
  readonly label: string;
  /** pid and port serving `s`, started on first use. */
  serve(s: Scenario): Promise<{ pid: number; port: number }>;
  stop(): Promise<void>;
}

function side(label: string, spec: string): Side {
  if (spec === 'sync-gate') {
    let c: Child | undefined;
    return {
      label,
      async serve() {
        c ??= await forkServer('sync-gate', 'baseline-proxy.ts', [`http://127.0.0.1:${upstream.port}`, '128', 'sync-verify', fx.jwksPath, ISSUER, AUDIENCE, '/orders/']);
        pinTree(c.proc.pid!, '0');
        return { pid: c.proc.pid!, port: c.port };
      },
      stop: async () => (c === undefined ? undefined : stopProcess(c.proc)),
    };
  }
  // One Gates per variant: both sides keep every variant they started.
  const byVariant = new Map<string, { gates: Gates; gate: RunningGate }>();
  return {
    label,
    async serve(s) {
      let g = byVariant.get(s.variant!);
      if (g === undefined) {
        const gates = new Gates(fx, upstream.port, 1, [], resolve(spec));
        g = { gates, gate: await gates.use(s.variant!, (l) => log(`  ${label}:${l}`)) };
        byVariant.set(s.variant!, g);
      }
      pinTree(g.gate.proc.pid, '0');
      return { pid: g.gate.proc.pid, port: g.gate.ports.proxy };
    },
    async stop() {
      for (const { gates } of byVariant.values()) await gates.stop();
    },
  };
}

const sides = [side('A', a.a), side('B', a.b)] as const;
log(`A = ${a.a}, B = ${a.b}; ${slices} slices of ${duration} s per side and row (after ${warmup} s warm-up each), ${load.connections} connections`);

async function slice(sd: Side, s: Scenario): Promise<{ cpuUs: number; rps: number }> {
  const { pid, port } = await sd.serve(s);
  let cpu0 = 0;
  let cpu1 = 0;
  const r = await runHttpLoad({
    port,
    request: s.request!(fx),
    expectStatus: s.expectStatus,
    connections: load.connections,
    pipelining: 1,
    durationSec: duration,
    warmupSec: warmup,
    beforeMeasure: async () => void (cpu0 = cpuSecondsOfTree(pid)),
    afterMeasure: async () => void (cpu1 = cpuSecondsOfTree(pid)),
  });
  if (r.unexpected > 0 || r.errors > 0) throw new Error(`${sd.label} ${s.id}: ${r.unexpected} unexpected answers ${JSON.stringify(r.statuses)}, ${r.errors} errors`);
  return { cpuUs: ((cpu1 - cpu0) * 1e6) / r.total, rps: r.total / r.seconds };
}

try {
  for (const [i, s] of rows.entries()) {
    const b = bRows[i]!;
    const got: { A: number[]; B: number[]; rA: number[]; rB: number[] } = { A: [], B: [], rA: [], rB: [] };
    for (let k = 0; k < slices; k++) {
      // A B, B A, A B, …: each side first in half of the pairs.
      for (const sd of k % 2 === 0 ? sides : [sides[1], sides[0]]) {
        const r = await slice(sd, sd === sides[0] ? s : b);
        got[sd.label as 'A' | 'B'].push(r.cpuUs);
        got[`r${sd.label}` as 'rA' | 'rB'].push(r.rps);
      }
    }
    const ratios = got.A.map((x, j) => got.B[j]! / x);
    const name = b === s ? s.id : `${s.id} (A) vs ${b.id} (B)`;
    log(`${name}: server CPU µs/req A ${got.A.map((x) => x.toFixed(0)).join(' ')} | B ${got.B.map((x) => x.toFixed(0)).join(' ')}`);
    log(`  median A ${median(got.A).toFixed(1)}, B ${median(got.B).toFixed(1)} µs/req; B/A per pair median ${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)}); req/s median A ${median(got.rA).toFixed(0)}, B ${median(got.rB).toFixed(0)}`);
  }
} finally {
  for (const sd of sides) await sd.stop();
  await stopProcess(upstream.proc);
  await rm(fx.dir, { recursive: true, force: true });
}
