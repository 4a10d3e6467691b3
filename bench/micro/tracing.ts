/**
 * Micro-benchmark of what tracing adds per proxied request, in-process (no sockets on the request
 * side): the decision span, the exchange span with its traceparent rewrite, and the export of
 * both (OTLP/HTTP JSON to a loopback sink in this process, so its CPU is counted too). CPU time per
 * request (process.cpuUsage: user + system), for
 *   - off:        what a transport does with tracing off (one undefined check),
 *   - ratio 0:    tracing on, nothing sampled (context extraction, non-recording spans, traceparent),
 *   - ratio 1:    tracing on, every request recorded and exported,
 *   - parent:     ratio 0 but the client's traceparent says sampled (recorded and exported).
 * Run: node bench/micro/tracing.ts [--requests N]   (default 200,000 per case)
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import pino from 'pino';
import type { Allow } from '../../src/core/decision.ts';
import type { DecisionTracer } from '../../src/observability/trace-hooks.ts';
import { startTracing } from '../../src/observability/tracing.ts';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '200000' } } });
const N = Number(values.requests);

let exported = 0;
const sink = createServer((req, res) => {
  req.on('data', (c: Buffer) => (exported += c.length));
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
});
await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
const endpoint = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/v1/traces`;

const allow = {
  kind: 'allow',
  reason: 'granted',
  path: '/orders/small',
  query: '',
  token: { iss: 'https://broker.internal' },
  grantIndex: 0,
} as unknown as Allow;
const RAW = ['host', 'orders.internal', 'authorization', 'Bearer x.y.z', 'user-agent', 'autocannon', 'accept', '*/*'];
const SAMPLED = [...RAW, 'traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'];

async function run(name: string, tracer: DecisionTracer | undefined, raw: readonly string[]): Promise<void> {
  const before = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < N; i++) {
    const headers = ['host', 'orders.internal', 'user-agent', 'autocannon'];
    if (tracer !== undefined) {
      const h = tracer.decision('proxy', raw, 'GET', allow, 0.00002, 0);
      h.upstream(headers).end(200, 'ok');
    }
    // Let the batch processor's timer and the exporter's sockets run, as between real requests.
    if (i % 64 === 63) await new Promise((r) => setImmediate(r));
  }
  await tracer?.shutdown(); // the export of what is still queued belongs to the cost
  const cpu = process.cpuUsage(before);
  const wall = performance.now() - started;
  process.stdout.write(`| ${name} | ${(((cpu.user + cpu.system) / N) * 1).toFixed(2)} | ${((wall * 1000) / N).toFixed(2)} |\n`);
}

const log = pino({ level: 'warn' });
const config = (ratio: number) => ({ otlp_endpoint: endpoint, sample_ratio: ratio, service_name: 'bench', headers: {}, max_queue_size: 2048, export_interval: 200, export_timeout: 10_000 });
process.stdout.write(`tracing micro bench: ${N} requests per case, Node ${process.version}\n\n| case | CPU µs/request | wall µs/request |\n|---|--:|--:|\n`);
await run('off (no tracer)', undefined, RAW);
await run('on, sample_ratio 0', startTracing(config(0), log), RAW);
await run('on, sample_ratio 1 (100 %)', startTracing(config(1), log), RAW);
await run('on, sample_ratio 0, sampled traceparent', startTracing(config(0), log), SAMPLED);
// Default queue (2048): a loop faster than the exporter would drop spans (and their export cost), which is
// why it yields every 64 requests; bytes per recorded span show whether all were exported (~650 when so).
process.stdout.write(`\nexported ${(exported / 1e6).toFixed(1)} MB of OTLP JSON over the two recording cases: ${(exported / (4 * N)).toFixed(0)} bytes per recorded span\n`);
sink.close();
