/**
 * gRPC load for ext_authz (autocannon speaks HTTP/1.1 only), run as a child process so the client
 * does not share an event loop with anything: keeps `concurrency` Authorization/Check calls in
 * flight on one channel (as Envoy multiplexes on one HTTP/2 connection) for a bounded time, after a
 * warm-up. The request is an Envoy-shaped CheckRequest encoded once with jitgate's protos; every
 * answer is compared byte for byte with the pre-flight answer, whose decoded `status.code` must be
 * the expected one, so a misconfigured run cannot report fake speed. With `tokensFile` (a JSON array
 * of tokens) the calls rotate through one CheckRequest per token, and since each token's allow names
 * its own identity, every answer's `status.code` is decoded and checked instead (h2 client only).
 *
 * Two clients (`client` in the job, `--grpc-client` of run.ts): `h2` (default) is node:http2 with
 * the request framed once — close to what Envoy's C++ client costs, so the row measures the
 * server; `grpc-js` is a grpc-js channel, whose own per-call cost on this 2-core box shares the
 * cores with the server under test (the client used before issue 20).
 *
 *   node bench/macro/grpc-load.ts '<json job>'   → one JSON line on stdout
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:http2';
import { rawCheckClient } from '../../test/fixtures/grpc-raw.ts';
import { CHECK_HEADERS, CHECK_PATH, checkMethod as check, checkRequest, grpcFramed } from './check-request.ts';
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
  readonly client?: 'h2' | 'grpc-js';
  readonly tokensFile?: string;
}

const job = JSON.parse(process.argv[2]!) as Job;
// The grpc-js client sends the one request only: it would check rotating answers against the hot token's.
if (job.tokensFile !== undefined && job.client === 'grpc-js') throw new Error('grpc-load: tokensFile needs the h2 client');

const request = checkRequest(job.method, job.path, job.authorization);
const framed = grpcFramed(request);
const rotating = job.tokensFile === undefined ? undefined : (JSON.parse(readFileSync(job.tokensFile, 'utf8')) as string[]).map((t) => grpcFramed(checkRequest(job.method, job.path, `Bearer ${t}`)));
let next = 0;
const H2_HEADERS = { ':method': 'POST', ':path': CHECK_PATH, ...CHECK_HEADERS };

const grpcJs = job.client === 'grpc-js' ? rawCheckClient(job.port) : undefined;
const session = job.client === 'grpc-js' ? undefined : connect(`http://127.0.0.1:${job.port}`);
session?.on('error', () => {});

function call(): Promise<Buffer | Error> {
  if (grpcJs !== undefined) return new Promise((resolve) => grpcJs.Check(request, (err, res) => resolve(err ?? res)));
  return new Promise((resolve) => {
    const req = session!.request(H2_HEADERS);
    const chunks: Buffer[] = [];
    let status: unknown;
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('trailers', (t) => (status = t['grpc-status']));
    req.on('error', (e) => resolve(e));
    req.on('end', () => {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      resolve(status === '0' && body.length >= 5 ? body.subarray(5) : new Error(`grpc-status ${String(status)}`));
    });
    req.end(rotating === undefined ? framed : rotating[next++ % rotating.length]);
  });
}

const client = { close: (): void => (grpcJs === undefined ? void session!.close() : grpcJs.close()) };

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
    else if (rotating === undefined ? !res.equals(first as Buffer) : (check.responseDeserialize(res).status?.code ?? 0) !== job.expectCode) unexpected++;
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
