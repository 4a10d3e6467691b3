/**
 * What tracing costs a cached allow when it is off (issue 18: "must not differ from today, ≤ 1 %"),
 * in process, since the macro bench cannot resolve 1 % on this machine (docs/performance.md).
 * With tracing off, the proxy path (3eb0a3f) gained exactly this: in handler.ts
 * `tracer === undefined ? undefined : tracer.decision(…)`, a fifth argument to `forward`, and in
 * forward.ts `if (trace !== undefined) { … }`. The two functions below are the proxy's request
 * preparation before and after that commit — the real `upstreamHeaders` and the dispatch options —
 * differing only in those lines; they run interleaved, 15 rounds, and the medians are compared.
 * Run: npx node bench/micro/tracing-off.ts [--calls N]
 */
import { parseArgs } from 'node:util';
import { validateConfig } from '../../src/config/load.ts';
import type { DecisionTracer, TraceHandle } from '../../src/observability/trace-hooks.ts';
import { compileHeaderPolicy, upstreamHeaders } from '../../src/transports/proxy/hop-headers.ts';
import { median } from '../median.ts';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '1000000' } } });
const N = Number(values.calls);
const config = validateConfig(
  { upstream: { url: 'http://127.0.0.1:9' }, service: { audience: 'orders' }, issuers: [{ issuer: 'https://i', jwks_file: '/dev/null', algorithms: ['ES256'] }] },
  '/tmp/jitgate.yaml',
);
const policy = compileHeaderPolicy(config);
const raw = ['host', '127.0.0.1:8080', 'user-agent', 'autocannon', 'authorization', 'Bearer x.y.z', 'accept', '*/*'];
const identity = [
  ['x-jit-subject', 'spiffe://bench/ci-deployer'],
  ['x-jit-jti', 'f0c1d2e3'],
  ['x-jit-issuer', 'https://broker.bench.internal'],
] as const;
let sink = 0;
type Done = (status: number) => void;
const done: Done = (s) => (sink += s);

function before(allowPath: string, method: string, d: Done): void {
  const head = upstreamHeaders(raw, policy, identity, '127.0.0.1', '8080');
  const options = { path: allowPath, method, headers: head.headers, body: null };
  sink += options.headers.length;
  d(200);
}

function after(allowPath: string, method: string, d: Done, tracer: DecisionTracer | undefined): void {
  const trace: TraceHandle | undefined = tracer === undefined ? undefined : tracer.decision('proxy', raw, method, undefined as never, 0, 0);
  forwardAfter(allowPath, method, d, trace);
}

function forwardAfter(allowPath: string, method: string, d: Done, trace?: TraceHandle): void {
  const head = upstreamHeaders(raw, policy, identity, '127.0.0.1', '8080');
  if (trace !== undefined) {
    const span = trace.upstream(head.headers);
    const finish = d;
    d = (status) => {
      span.end(status, 'ok');
      finish(status);
    };
  }
  const options = { path: allowPath, method, headers: head.headers, body: null };
  sink += options.headers.length;
  d(200);
}

const cpu = (f: () => void): number => {
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) f();
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) * 1000) / N; // ns per call
};
const tracer: DecisionTracer | undefined = undefined;
const a = (): void => before('/orders/small', 'GET', done);
const b = (): void => after('/orders/small', 'GET', done, tracer);
for (let i = 0; i < 200_000; i++) {
  a();
  b();
}
const ra: number[] = [];
const rb: number[] = [];
for (let r = 0; r < 15; r++) {
  if (r % 2 === 0) {
    ra.push(cpu(a));
    rb.push(cpu(b));
  } else {
    rb.push(cpu(b));
    ra.push(cpu(a));
  }
}
const diffs = ra.map((x, i) => rb[i]! - x);
process.stdout.write(`tracing off, ${N.toLocaleString('en-US')} calls × 15 interleaved rounds, Node ${process.version}\n`);
process.stdout.write(`| request preparation | CPU ns per call, median (range) |\n|---|--:|\n`);
process.stdout.write(`| before 3eb0a3f (no tracing hooks) | ${median(ra).toFixed(1)} (${Math.min(...ra).toFixed(1)}–${Math.max(...ra).toFixed(1)}) |\n`);
process.stdout.write(`| after, tracing off (tracer undefined) | ${median(rb).toFixed(1)} (${Math.min(...rb).toFixed(1)}–${Math.max(...rb).toFixed(1)}) |\n`);
process.stdout.write(`| difference per round, after − before | ${median(diffs).toFixed(1)} (${Math.min(...diffs).toFixed(1)}–${Math.max(...diffs).toFixed(1)}) |\n`);
if (sink === 0) process.stdout.write('unreachable\n');
