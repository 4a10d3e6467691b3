/**
 * What counting a refusal at the cluster primary costs (SPEC §12, docs/anomaly-and-audit.md): one
 * `jitgate:anomaly-count` round trip over node:cluster's IPC channel, with the real worker side
 * (PrimaryRefusalCounter) and the real primary side (answerAnomalyCount over a RefusalCounter), as
 * a gate with `workers` > 1 runs them. Three figures, each the median of `--rounds` blocks:
 *   - the count in one process (RefusalCounter.add), what a single-process gate pays;
 *   - one round trip at a time: latency and CPU of worker + primary per refusal;
 *   - 50 in flight (a burst of refusals): CPU of worker + primary per refusal.
 * Keys rotate through 10,000 distinct token-like strings, so every count is a real LRU lookup.
 *
 * Run: npx node bench/micro/anomaly-ipc.ts [--rounds 7] [--n 4000]   (taskset -c 0 for one core)
 */
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { answerAnomalyCount, PrimaryRefusalCounter, type AnomalyCountRequest } from '../../src/anomaly/primary-counter.ts';
import { RefusalCounter } from '../../src/anomaly/refusal-counter.ts';
import { median } from '../median.ts';
import { inFlight } from './in-flight.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, n: { type: 'string', default: '4000' } } });
const rounds = Number(values.rounds);
const n = Number(values.n);
/** What a gate is configured with by default (docs/configuration.md): deny_threshold 20 in 60 s, 10,000 tracked. */
const counter = (): RefusalCounter => new RefusalCounter(20, 60_000, 10_000);

interface Phase {
  readonly type: 'bench:phase';
  readonly name: string;
  readonly state: 'start' | 'end';
}
interface Result {
  readonly type: 'bench:result';
  readonly rows: Record<string, { workerUs: number; latencyUs: number }>;
}

const cpuUs = (c: NodeJS.CpuUsage): number => c.user + c.system;

if (cluster.isPrimary) {
  const refusals = counter();
  const worker = cluster.fork();
  let phaseStart: NodeJS.CpuUsage | undefined;
  const primaryUs = new Map<string, number[]>();
  const done = new Promise<Result>((resolve, reject) => {
    worker.on('exit', (code) => reject(new Error(`the worker exited with ${code}`)));
    worker.on('message', (msg: AnomalyCountRequest | Phase | Result) => {
      if (msg.type === 'jitgate:anomaly-count') worker.send(answerAnomalyCount(refusals, msg));
      else if (msg.type === 'bench:phase' && msg.state === 'start') phaseStart = process.cpuUsage();
      else if (msg.type === 'bench:phase') {
        // The first block of each case is the worker's warm-up: not recorded here either.
        const list = primaryUs.get(msg.name);
        if (list === undefined) primaryUs.set(msg.name, []);
        else list.push(cpuUs(process.cpuUsage(phaseStart)));
      } else if (msg.type === 'bench:result') resolve(msg);
    });
  });
  const result = await done;
  worker.kill();
  console.log(`node ${process.version}, ${n} refusals per block, median of ${rounds} blocks; CPU µs per counted refusal\n`);
  console.log('| counting | worker CPU µs | primary CPU µs | both | one refusal, wall µs |');
  console.log('|---|--:|--:|--:|--:|');
  for (const [name, r] of Object.entries(result.rows)) {
    const p = median(primaryUs.get(name)!) / n;
    console.log(`| ${name} | ${r.workerUs.toFixed(2)} | ${p.toFixed(2)} | ${(r.workerUs + p).toFixed(2)} | ${r.latencyUs > 0 ? r.latencyUs.toFixed(1) : '–'} |`);
  }
} else {
  const keys = Array.from({ length: 10_000 }, () => randomBytes(32).toString('base64url'));
  let k = 0;
  const nextKey = (): string => keys[(k = (k + 1) % keys.length)]!;
  const local = counter();
  const remote = new PrimaryRefusalCounter(process as unknown as ConstructorParameters<typeof PrimaryRefusalCounter>[0]);
  const tell = (m: Phase): void => void process.send!(m);

  /** One block of `n` counts: the worker's CPU per count and the wall time per count. */
  async function block(name: string, run: () => Promise<void> | void): Promise<{ workerUs: number; wallUs: number }> {
    tell({ type: 'bench:phase', name, state: 'start' });
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await run();
    const wallUs = ((performance.now() - t0) * 1000) / n;
    const workerUs = cpuUs(process.cpuUsage(c0)) / n;
    tell({ type: 'bench:phase', name, state: 'end' });
    return { workerUs, wallUs };
  }
  /** name, one block's work, and whether its wall time per count is a latency worth printing (one at a time). */
  const cases: [string, () => Promise<void> | void, boolean][] = [
    [
      'in one process (RefusalCounter.add)',
      () => {
        for (let i = 0; i < n; i++) local.add(nextKey(), Date.now());
      },
      false,
    ],
    [
      'at the primary, one at a time',
      async () => {
        for (let i = 0; i < n; i++) await remote.add(nextKey(), Date.now());
      },
      true,
    ],
    [
      'at the primary, 50 in flight',
      () => inFlight(n, 50, () => remote.add(nextKey(), Date.now())),
      false,
    ],
  ];
  const worker = new Map(cases.map(([name]) => [name, [] as number[]]));
  const wall = new Map(cases.map(([name]) => [name, [] as number[]]));
  for (const [name, run] of cases) await block(name, run); // warm-up, not recorded by the worker
  for (let r = 0; r < rounds; r++) {
    for (const [name, run] of r % 2 === 0 ? cases : [...cases].reverse()) {
      const b = await block(name, run);
      worker.get(name)!.push(b.workerUs);
      wall.get(name)!.push(b.wallUs);
    }
  }
  const rows: Result['rows'] = {};
  for (const [name, , latency] of cases) rows[name] = { workerUs: median(worker.get(name)!), latencyUs: latency ? median(wall.get(name)!) : 0 };
  process.send!({ type: 'bench:result', rows } satisfies Result);
}
