/**
 * Decision throughput of the ext_authz transports with a cached token (SPEC §7), each next to a
 * baseline server on the same transport that answers a fixed response without deciding, so the
 * ratio shows what jitgate's decision adds:
 *   - HTTP service: autocannon (worker thread) → GET /authz/orders/42/items?x=1 → 200 + identity headers
 *   - gRPC service: grpc-js client (worker thread), N calls in flight → Check → status 0
 * Audit lines are written (to /dev/null), as in production.
 *
 * Run: node bench/ext-authz/run.ts [--seconds 10] [--connections 32]
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { validateConfig } from '../../src/config/load.ts';
import { Gate } from '../../src/gate.ts';
import { AuditLog } from '../../src/observability/audit.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { startExtAuthz } from '../../src/transports/ext-authz/index.ts';
import { encodeResponse, loadProtos, PROTO_DIR } from '../../src/transports/ext-authz/protos.ts';
import { jwksOf, makeKey, tempDir, writeJson } from '../../test/fixtures/keys.ts';
import { AUDIENCE, ISSUER_A, LOCATION, sign } from '../../test/fixtures/tokens.ts';
import { loadSync } from '@grpc/proto-loader';

interface AutocannonResult {
  readonly requests: { readonly average: number };
  readonly latency: { readonly p50: number; readonly p99: number };
  readonly errors: number;
  readonly non2xx: number;
}
/** autocannon ships no types; this is the part used here. */
const autocannon = createRequire(import.meta.url)('autocannon') as (opts: object) => Promise<AutocannonResult>;

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, connections: { type: 'string', default: '32' } } });
const seconds = Number(values.seconds);
const connections = Number(values.connections);

const key = await makeKey('ES256', 'bench');
const dir = await tempDir('jitgate-bench-');
const jwks = await writeJson(dir, 'jwks.json', jwksOf(key));
const file = join(dir, 'bench.yaml');
const config = validateConfig(
  {
    upstream: { url: 'http://127.0.0.1:9' },
    service: { audience: AUDIENCE, location: LOCATION },
    issuers: [{ issuer: ISSUER_A, jwks_file: jwks, algorithms: ['ES256'], typ: 'jit+jwt' }],
    ext_authz: { http: { listen: { host: '127.0.0.1', port: 0 }, path_prefix: '/authz' }, grpc: { listen: { host: '127.0.0.1', port: 0 } } },
  },
  file,
);
const gate = new Gate(config, file);
await gate.start();
const logger = createLogger({ level: 'info', destination: '/dev/null' });
const ctx = { config, gate, metrics: new Metrics({ defaultMetrics: false }), audit: new AuditLog(logger), logger };
const listeners = await startExtAuthz(ctx);
const httpPort = listeners.find((l) => l.name === 'ext_authz_http')!.port;
const grpcPort = listeners.find((l) => l.name === 'ext_authz_grpc')!.port;

const now = Math.floor(Date.now() / 1000);
const token = await sign(key, { iat: now, exp: now + 600 });
const authorization = `Bearer ${token}`;

// ---- baselines: same transport, fixed answer, no decision ----
const baseHttp = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  req.resume();
  res.writeHead(200, { 'x-jit-subject': 'spiffe://prod/ci-deployer', 'cache-control': 'no-store', 'content-length': '0' }).end();
});
await new Promise<void>((r) => baseHttp.listen(0, '127.0.0.1', r));
const baseHttpPort = (baseHttp.address() as AddressInfo).port;

const protos = loadProtos();
const fixedOk = encodeResponse(protos.authorization, 'Check', { status: { code: 0 }, ok_response: { headers: [{ header: { key: 'x-jit-subject', value: 'spiffe://prod/ci-deployer' }, append: { value: false } }], headers_to_remove: ['authorization'] } });
const baseGrpc = new Server();
baseGrpc.addService(protos.authorization, { Check: (_call: unknown, cb: (e: null, r: Buffer) => void) => cb(null, fixedOk) });
const baseGrpcPort = await new Promise<number>((res, rej) => baseGrpc.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));

// A CheckRequest as Envoy sends it (headers map), encoded once.
const def = loadSync('envoy/service/auth/v3/external_auth.proto', { keepCase: true, includeDirs: [PROTO_DIR] });
const service = def['envoy.service.auth.v3.Authorization'] as unknown as { Check: { requestSerialize: (v: object) => Buffer } };
const checkBytes = service.Check.requestSerialize({
  attributes: { request: { http: { method: 'GET', path: '/orders/42/items?x=1', host: 'orders.internal', headers: { ':method': 'GET', ':path': '/orders/42/items?x=1', ':authority': 'orders.internal', authorization, 'user-agent': 'bench', 'x-request-id': 'b1' } } } },
});

interface Row {
  readonly name: string;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
}

async function http(name: string, port: number, path: string): Promise<Row> {
  const r = await autocannon({ url: `http://127.0.0.1:${port}${path}`, connections, duration: seconds, headers: { authorization, 'content-length': '0' }, workers: 1 });
  return { name, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx };
}

function grpc(name: string, port: number): Promise<Row> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./grpc-load.ts', import.meta.url), { workerData: { address: `127.0.0.1:${port}`, request: checkBytes, seconds, concurrency: connections } });
    w.once('message', (m: { count: number; errors: number; elapsed: number; p50: number; p99: number }) => resolve({ name, rps: m.count / m.elapsed, p50: m.p50, p99: m.p99, errors: m.errors }));
    w.once('error', reject);
  });
}

// Warm the token cache, then measure.
await fetch(`http://127.0.0.1:${httpPort}/authz/orders/42`, { headers: { authorization } });
const rows: Row[] = [];
rows.push(await http('HTTP baseline (fixed 200)', baseHttpPort, '/authz/orders/42/items?x=1'));
rows.push(await http('HTTP ext_authz, cached allow', httpPort, '/authz/orders/42/items?x=1'));
rows.push(await grpc('gRPC baseline (fixed OK)', baseGrpcPort));
rows.push(await grpc('gRPC ext_authz, cached allow', grpcPort));

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
console.log(`\nnode ${process.version}, ${seconds}s per case, ${connections} connections / calls in flight\n`);
console.log('| case                          |   req/s | p50 ms | p99 ms | errors | vs baseline |');
console.log('|-------------------------------|--------:|-------:|-------:|-------:|------------:|');
rows.forEach((r, i) => {
  const base = rows[i - (i % 2)]!;
  const ratio = i % 2 === 0 ? '' : `${((r.rps / base.rps) * 100).toFixed(0)} %`;
  console.log(`| ${r.name.padEnd(29)} | ${fmt(r.rps).padStart(7)} | ${r.p50.toFixed(2).padStart(6)} | ${r.p99.toFixed(2).padStart(6)} | ${String(r.errors).padStart(6)} | ${ratio.padStart(11)} |`);
});

await Promise.all(listeners.map((l) => l.close(100)));
baseHttp.close();
baseGrpc.forceShutdown();
gate.stop();
