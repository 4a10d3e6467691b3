/**
 * Worker thread for bench/ext-authz/run.ts: keeps `concurrency` Check calls in flight against a
 * gRPC address for `seconds`, then posts {count, errors, latency percentiles in ms}. A separate
 * thread, so the load generator does not share the server's event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { credentials, makeGenericClientConstructor, type ServiceError } from '@grpc/grpc-js';

interface Job {
  readonly address: string;
  readonly request: Uint8Array;
  readonly seconds: number;
  readonly concurrency: number;
}

const job = workerData as Job;
const Client = makeGenericClientConstructor(
  {
    Check: {
      path: '/envoy.service.auth.v3.Authorization/Check',
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  },
  'Authorization',
);
const client = new Client(job.address, credentials.createInsecure()) as unknown as {
  Check(req: Buffer, cb: (err: ServiceError | null, res: Buffer) => void): void;
  close(): void;
};
const request = Buffer.from(job.request);

const latencies: number[] = [];
let count = 0;
let errors = 0;
const deadline = performance.now() + job.seconds * 1000;

function one(): Promise<void> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    client.Check(request, (err) => {
      if (err) errors++;
      else count++;
      latencies.push(performance.now() - t0);
      resolve();
    });
  });
}

async function lane(): Promise<void> {
  while (performance.now() < deadline) await one();
}

// Warm-up: connect and fill the server's token cache.
for (let i = 0; i < 200; i++) await one();
latencies.length = 0;
count = 0;
errors = 0;
const start = performance.now();
await Promise.all(Array.from({ length: job.concurrency }, lane));
const elapsed = (performance.now() - start) / 1000;
latencies.sort((a, b) => a - b);
const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
client.close();
parentPort!.postMessage({ count, errors, elapsed, p50: p(0.5), p99: p(0.99) });
