/**
 * gRPC load for ext_authz (autocannon speaks HTTP/1.1 only), run as a child process so the client
 * does not share an event loop with anything: keeps `concurrency` Authorization/Check calls in
 * flight on one channel (as Envoy multiplexes on one HTTP/2 connection) for a bounded time, after a
 * warm-up. The request is an Envoy-shaped CheckRequest encoded once with jitgate's protos; every
 * answer is compared byte for byte with the pre-flight answer, whose decoded `status.code` must be
 * the expected one, so a misconfigured run cannot report fake speed.
 *
 *   node bench/macro/grpc-load.ts '<json job>'   → one JSON line on stdout
 */
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import { LOADER_OPTIONS } from '../../src/transports/ext-authz/protos.ts';
import { rawCheckClient } from '../../test/fixtures/grpc-raw.ts';
import { LatencyHistogram, meanStddev } from './histogram.ts';

interface Job {
  readonly port: number;
  readonly method: string;
  readonly path: string;
  readonly authorization: string;
  readonly expectCode: number;
  readonly concurrency: number;
  readonly durationSec: number;
  readonly warmupSec: number;
}

const job = JSON.parse(process.argv[2]!) as Job;

const def = loadSync(['envoy/service/auth/v3/external_auth.proto'], LOADER_OPTIONS);
const check = (def['envoy.service.auth.v3.Authorization'] as unknown as Record<string, MethodDefinition<object, { status?: { code?: number } }>>).Check!;
const request = check.requestSerialize({
  attributes: {
    request: {
      http: {
        method: job.method,
        path: job.path,
        host: 'orders.bench.internal',
        scheme: 'http',
        protocol: 'HTTP/1.1',
        headers: { ':authority': 'orders.bench.internal', ':method': job.method, ':path': job.path, authorization: job.authorization, 'user-agent': 'bench' },
      },
    },
  },
});

const client = rawCheckClient(job.port);

function call(): Promise<Buffer | Error> {
  return new Promise((resolve) => client.Check(request, (err, res) => resolve(err ?? res)));
}

const first = await call();
if (first instanceof Error) throw first;
const code = check.responseDeserialize(first).status?.code ?? 0;
if (code !== job.expectCode) {
  process.stdout.write(`${JSON.stringify({ preflight: { code, expected: job.expectCode } })}\n`);
  process.exit(1);
}

let hist = new LatencyHistogram();
let windows: number[] = [];
let unexpected = 0;
let errors = 0;
let recording = false;
let start = 0;

async function lane(deadline: number): Promise<void> {
  while (performance.now() < deadline) {
    const t0 = performance.now();
    const res = await call();
    if (!recording) continue;
    const t1 = performance.now();
    if (res instanceof Error) errors++;
    else if (!res.equals(first as Buffer)) unexpected++;
    hist.record(t1 - t0);
    const w = Math.floor((t1 - start) / 1000);
    windows[w] = (windows[w] ?? 0) + 1;
  }
}

async function phase(seconds: number): Promise<void> {
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: job.concurrency }, () => lane(deadline)));
}

if (job.warmupSec > 0) await phase(job.warmupSec);
hist = new LatencyHistogram();
windows = [];
process.stdout.write(`${JSON.stringify({ phase: 'measure' })}\n`);
recording = true;
start = performance.now();
await phase(job.durationSec);
const seconds = (performance.now() - start) / 1000;
client.close();
const samples = Array.from({ length: Math.min(Math.floor(seconds), job.durationSec) }, (_, i) => windows[i] ?? 0);
process.stdout.write(
  `${JSON.stringify({
    rps: { ...meanStddev(samples), samples },
    latency: hist.percentiles(),
    total: hist.count,
    statuses: { [`grpc-check-${code}`]: hist.count - unexpected - errors },
    unexpected,
    errors,
    seconds,
  })}\n`,
);
