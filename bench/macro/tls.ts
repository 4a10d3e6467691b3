/**
 * `npm run bench:tls` — what workload identity costs (SPEC §11), on the same harness pieces as
 * `npm run bench` (upstream.ts, http-load.ts, processes.ts), jitgate run as `jitgate serve -c`:
 *
 *   plain-cached     plain HTTP listener, one hot token, keep-alive (the reference)
 *   tls-cached       TLS listener with client certificates, same token, keep-alive: the cost of TLS on the cached path
 *   tls-bound        TLS, a token bound to the client's certificate (cnf.x5t#S256): the cost of the binding check
 *   handshake-full / handshake-resumed
 *                    a new TLS connection per request, without / with session resumption (tickets):
 *                    what a client that does not keep connections alive pays, and what resumption saves
 *
 * The three load rows are measured in interleaved rounds (A B C, C B A, …) so machine drift hits them
 * alike; each ratio is the median of the per-round ratios. Target: tls-bound ≥ 0.98 × tls-cached.
 * Writes bench/results/<time>-tls.{json,md} unless --no-write.
 *
 *   npm run bench:tls -- [--rounds 3] [--duration 5] [--connections 50] [--handshakes 2000] [--no-write]
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { generateDevKeys } from '../../src/issuing/dev-keys.ts';
import { mintToken } from '../../src/issuing/mint-token.ts';
import { makePki, type Pki } from '../../test/fixtures/pki.ts';
import { runHttpLoad, type LoadResult } from './http-load.ts';
import { cpuSecondsOfTree, forkServer, freePorts, spawnGate, stopProcess, waitReady, type GateProcess } from './processes.ts';
import { median } from '../median.ts';

const { values: a } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '50' },
    handshakes: { type: 'string', default: '2000' },
    'no-write': { type: 'boolean', default: false },
  },
});
const rounds = Number(a.rounds);
const duration = Number(a.duration);
const connections = Number(a.connections);
const handshakes = Number(a.handshakes);
const log = (s: string): void => void process.stderr.write(`${s}\n`);

const ISSUER = 'https://broker.bench.internal';
const dir = await mkdtemp(join(tmpdir(), 'jitgate-bench-tls-'));
const pki: Pki = await makePki();
const keys = await generateDevKeys(join(dir, 'keys'));
const mint = (cnfCert?: string) =>
  mintToken({ key: keys.privatePath, iss: ISSUER, aud: 'orders', sub: 'spiffe://prod/ci-deployer', actions: ['GET'], paths: ['/orders/**'], ttlSeconds: 3600, cnfCert });
const [unbound, bound] = await Promise.all([mint(), mint(pki.workloadA.cert)]);
const client = { cert: readFileSync(pki.workloadA.cert), key: readFileSync(pki.workloadA.key) };
const ca = readFileSync(pki.ca.cert);

const upstream = await forkServer('upstream', 'upstream.ts');
const gates: { proc: GateProcess; port: number }[] = [];

async function startGate(name: string, tls: boolean): Promise<{ proc: GateProcess; port: number }> {
  const [port, admin] = (await freePorts(2)) as [number, number];
  const config = {
    listen: { host: '127.0.0.1', port, ...(tls ? { tls: { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: pki.ca.cert } } : {}) },
    upstream: { url: `http://127.0.0.1:${upstream.port}` },
    service: { audience: 'orders' },
    issuers: [{ issuer: ISSUER, jwks_file: keys.jwksPath, algorithms: ['ES256'], typ: 'jit+jwt', max_ttl: '2h' }],
    admin: { listen: { host: '127.0.0.1', port: admin } },
    log: { level: 'info', audit: true, destination: join(dir, `${name}.log`) },
  };
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, JSON.stringify(config));
  const proc = spawnGate(file);
  await waitReady(proc, admin, 60_000);
  const g = { proc, port };
  gates.push(g);
  return g;
}

interface Measured {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly cpuUsPerReq: number;
  readonly unexpected: number;
  readonly errors: number;
}

async function load(g: { proc: GateProcess; port: number }, token: string, tls: boolean): Promise<Measured> {
  let cpu0 = 0;
  let cpu1 = 0;
  const r: LoadResult = await runHttpLoad({
    port: g.port,
    request: { method: 'GET', path: '/orders/small', headers: { authorization: `Bearer ${token}` } },
    expectStatus: 200,
    connections,
    pipelining: 1,
    durationSec: duration,
    warmupSec: 1,
    beforeMeasure: async () => void (cpu0 = cpuSecondsOfTree(g.proc.pid)),
    afterMeasure: async () => void (cpu1 = cpuSecondsOfTree(g.proc.pid)),
    ...(tls ? { tls: client } : {}),
  });
  return { rps: r.rps.mean, p50: r.latency.p50, p99: r.latency.p99, cpuUsPerReq: ((cpu1 - cpu0) * 1e6) / Math.max(1, r.total), unexpected: r.unexpected, errors: r.errors };
}

/** `n` requests, each on a new TLS connection; 8 in parallel. With `resume`, each loop reuses its last session ticket. */
async function handshakeLoop(port: number, token: string, n: number, resume: boolean): Promise<{ perSec: number; resumed: number; failed: number }> {
  let resumed = 0;
  let failed = 0;
  const one = (session: Buffer | undefined): Promise<Buffer | undefined> =>
    new Promise((resolve) => {
      let next = session;
      const req = request(
        {
          host: '127.0.0.1', port, path: '/orders/small', servername: 'localhost', ca, ...client, agent: false, session,
          headers: { authorization: `Bearer ${token}`, connection: 'close' },
        } as never,
        (res) => {
          if ((res.socket as TLSSocket).isSessionReused()) resumed++;
          if (res.statusCode !== 200) failed++;
          res.resume();
          res.on('end', () => resolve(next));
        },
      );
      req.on('socket', (s: TLSSocket) => s.on('session', (b: Buffer) => (next = b)));
      req.on('error', () => {
        failed++;
        resolve(undefined);
      });
      req.end();
    });
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      let session: Buffer | undefined;
      for (let i = 0; i < n / 8; i++) {
        const s = await one(resume ? session : undefined);
        if (resume) session = s;
      }
    }),
  );
  return { perSec: n / ((performance.now() - t0) / 1000), resumed, failed };
}


try {
  const plain = await startGate('plain', false);
  const tls = await startGate('tls', true);
  // connect() is only here to check the TLS gate before loading it: the handshake must verify.
  await new Promise<void>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: tls.port, servername: 'localhost', ca, ...client }, () => (s.end(), resolve()));
    s.on('error', reject);
  });
  const rows: Record<string, Measured[]> = { 'plain-cached': [], 'tls-cached': [], 'tls-bound': [] };
  const runs: [keyof typeof rows, () => Promise<Measured>][] = [
    ['plain-cached', () => load(plain, unbound, false)],
    ['tls-cached', () => load(tls, unbound, true)],
    ['tls-bound', () => load(tls, bound, true)],
  ];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? runs : [...runs].reverse();
    for (const [id, run] of order) {
      const m = await run();
      rows[id]!.push(m);
      log(`round ${round + 1} ${id}: ${Math.round(m.rps)} req/s, p50 ${m.p50.toFixed(3)} ms, p99 ${m.p99.toFixed(3)} ms, ${m.cpuUsPerReq.toFixed(1)} µs CPU/req${m.unexpected + m.errors > 0 ? `, ⚠ ${m.unexpected} unexpected, ${m.errors} errors` : ''}`);
    }
  }
  const full = await handshakeLoop(tls.port, unbound, handshakes, false);
  const resumed = await handshakeLoop(tls.port, unbound, handshakes, true);
  log(`handshake per request: full ${Math.round(full.perSec)}/s, resumed ${Math.round(resumed.perSec)}/s (${resumed.resumed}/${handshakes} resumed)`);

  const ratio = (x: string, y: string): number => median(rows[x]!.map((m, i) => m.rps / rows[y]![i]!.rps));
  const tlsVsPlain = ratio('tls-cached', 'plain-cached');
  const boundVsUnbound = ratio('tls-bound', 'tls-cached');
  const cpuBound = median(rows['tls-bound']!.map((m, i) => m.cpuUsPerReq / rows['tls-cached']![i]!.cpuUsPerReq));
  const lines = [
    `| row | req/s (median of ${rounds}) | p50 ms | p99 ms | gate CPU µs/req | ratio |`,
    '|---|---|---|---|---|---|',
    ...Object.entries(rows).map(([id, ms]) => {
      const med = (f: (m: Measured) => number) => median(ms.map(f));
      const r = id === 'tls-cached' ? `${tlsVsPlain.toFixed(3)} × plain-cached` : id === 'tls-bound' ? `${boundVsUnbound.toFixed(3)} × tls-cached` : '1';
      return `| ${id} | ${Math.round(med((m) => m.rps))} | ${med((m) => m.p50).toFixed(3)} | ${med((m) => m.p99).toFixed(3)} | ${med((m) => m.cpuUsPerReq).toFixed(1)} | ${r} |`;
    }),
    `| handshake-full (new connection per request) | ${Math.round(full.perSec)} | | | | ${full.failed} failed |`,
    `| handshake-resumed (session tickets) | ${Math.round(resumed.perSec)} | | | | ${(resumed.perSec / full.perSec).toFixed(2)} × full, ${resumed.resumed}/${handshakes} resumed |`,
    '',
    `Target bound-token cached allow ≥ 0.98 × unbound (≤ 2 %): ${boundVsUnbound >= 0.98 ? 'met' : 'NOT met'} (${boundVsUnbound.toFixed(3)}, median of ${rounds} interleaved rounds; gate CPU per request ${cpuBound.toFixed(3)} × unbound).`,
    `Other load on the machine during the run: load average ${loadavg().map((l) => l.toFixed(1)).join(' / ')} (1/5/15 min) on ${cpus().length} cores.`,
  ];
  const md = lines.join('\n');
  process.stdout.write(`${md}\n`);
  if (!a['no-write']) {
    const stamp = new Date().toISOString().replace(/:/g, '-').slice(0, 19);
    const out = fileURLToPath(new URL(`../results/${stamp}-tls`, import.meta.url));
    await writeFile(`${out}.md`, `# npm run bench:tls — ${stamp}\n\nNode ${process.version}, ${connections} connections, ${duration} s per slice, ${rounds} rounds.\n\n${md}\n`);
    await writeFile(`${out}.json`, JSON.stringify({ stamp, node: process.version, connections, duration, rounds, rows, handshakes: { full, resumed }, tlsVsPlain, boundVsUnbound }, null, 2));
    log(`wrote ${out}.{md,json}`);
  }
} finally {
  await Promise.all(gates.map((g) => stopProcess(g.proc.proc, 10_000)));
  await stopProcess(upstream.proc, 5_000);
  await rm(dir, { recursive: true, force: true });
  await pki.remove();
}
