/**
 * `npm run bench:fleet`: fleet state on Redis (SPEC §9, docs/fleet.md). One real redis-server
 * (AOF, appendfsync always) and GATES `jitgate serve` processes on loopback sharing it:
 *
 *   1. revocation propagation: N revocations, each POSTed to a different gate; for each, the time
 *      from the 201 to every gate's first refusal (polled every 10 ms): p50 / p99 / max;
 *   2. Redis commands per cached bearer request (INFO commandstats around M requests, the
 *      background follow/sweep commands of all gates counted apart; target 0);
 *   3. DPoP request cost: M sequential DPoP-bound requests (proofs made beforehand) against a gate
 *      with `dpop.replay: redis` and one with `dpop.replay: local`: mean and p99 latency.
 *
 * Prints a summary and writes bench/results/fleet-<time>.json. Stops everything it started.
 *
 *   npm run bench:fleet                              20 gates, 50 revocations, 500 requests
 *   npm run bench:fleet -- --gates 5 --revocations 10 --requests 200
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { calculateJwkThumbprint, CompactSign } from 'jose';
import { publicJwkOf } from '../src/issuing/key-files.ts';
import { accessTokenHash } from '../src/core/token.ts';
import { makeKey } from '../test/fixtures/keys.ts';
import { startRedis } from '../test/fixtures/redis.ts';
import { spawnGate, startRecordingUpstream, tokenNow, writeGateConfig, type GateProcess } from '../test/fixtures/servers.ts';

const { values: a } = parseArgs({ options: { gates: { type: 'string', default: '20' }, revocations: { type: 'string', default: '50' }, requests: { type: 'string', default: '500' } } });
const GATES = Number(a.gates);
const N = Number(a.revocations);
const M = Number(a.requests);
const ORIGIN = 'http://orders.internal';
const ADMIN = 'bench-admin-token-0123456789';
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));
const BACKGROUND = new Set(['xread', 'time', 'multi', 'exec', 'zremrangebyscore', 'xtrim', 'info', 'hello', 'ping', 'client|setname', 'client|setinfo', 'select', 'xrevrange', 'zrange']);

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};
const round = (x: number): number => Math.round(x * 10) / 10;

const redis = await startRedis();
const upstream = await startRecordingUpstream();
const gates: GateProcess[] = [];
let dir: string | undefined;
const hardStop = setTimeout(() => {
  process.stderr.write('bench:fleet: 10-minute limit reached, stopping\n');
  void cleanup().then(() => process.exit(1));
}, 600_000);

async function cleanup(): Promise<void> {
  for (const g of gates) if (g.child.exitCode === null) g.child.kill('SIGKILL');
  await Promise.all(gates.map((g) => g.exited));
  await upstream.close();
  await redis.remove();
  if (dir) await rm(dir, { recursive: true, force: true });
}

async function reason(g: GateProcess, headers: Record<string, string>): Promise<string> {
  const r = await fetch(`${g.url}/orders/42`, { headers });
  const text = await r.text();
  return r.status === 200 ? 'granted' : (JSON.parse(text) as { reason: string }).reason;
}

async function commandCalls(): Promise<Map<string, number>> {
  const text = String(await redis.command('INFO', 'commandstats'));
  return new Map([...text.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
}

try {
  const base = await writeGateConfig(upstream.url, (c) => {
    c.revocation = { redis: true, max_stale: '30s' };
    c.dpop = { replay: 'redis', external_origin: ORIGIN };
    c.log = { level: 'info', audit: false, destination: 'stdout' };
  });
  dir = base.dir;
  const tokenFile = join(dir, 'admin-token');
  await writeFile(tokenFile, ADMIN);
  const configFile = async (name: string, patch: Record<string, unknown> = {}): Promise<string> => {
    const f = join(dir!, `${name}.yaml`);
    await writeFile(f, JSON.stringify({ ...base.raw, admin: { listen: { host: '127.0.0.1', port: 0 }, token_file: tokenFile }, redis: { url: redis.url, connect_timeout: '10s' }, ...patch }));
    return f;
  };
  const t0 = Date.now();
  for (let i = 0; i < GATES; i += 5) gates.push(...(await Promise.all(Array.from({ length: Math.min(5, GATES - i) }, async (_, j) => spawnGate(await configFile(`gate-${i + j}`))))));
  process.stdout.write(`${GATES} gates started in ${Date.now() - t0} ms\n`);

  // 1. Propagation.
  const delays: number[] = [];
  for (let i = 0; i < N; i++) {
    const token = await tokenNow(base.keys, { jti: `bench-${i}` });
    const auth = { authorization: `Bearer ${token}` };
    await Promise.all(gates.map((g) => reason(g, auth))); // cached everywhere
    const res = await fetch(`${gates[i % GATES]!.adminUrl}/revocations`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ jti: `bench-${i}` }) });
    const acked = performance.now();
    if (res.status !== 201) throw new Error(`POST answered ${res.status}: ${await res.text()}`);
    await Promise.all(
      gates.map(async (g) => {
        while ((await reason(g, auth)) !== 'revoked') {
          if (performance.now() - acked > 10_000) throw new Error('not refused within 10 s');
          await new Promise((r) => setTimeout(r, 10));
        }
        delays.push(performance.now() - acked);
      }),
    );
  }

  // 2. Redis commands per cached bearer request.
  const cachedToken = await tokenNow(base.keys, { jti: 'bench-cached' });
  await reason(gates[0]!, { authorization: `Bearer ${cachedToken}` });
  const before = await commandCalls();
  for (let i = 0; i < M; i++) await reason(gates[0]!, { authorization: `Bearer ${cachedToken}` });
  const after = await commandCalls();
  let requestCommands = 0;
  let backgroundCommands = 0;
  for (const [cmd, calls] of after) (BACKGROUND.has(cmd) ? (backgroundCommands += calls - (before.get(cmd) ?? 0)) : (requestCommands += calls - (before.get(cmd) ?? 0)));

  // 3. DPoP cost: Redis guard (gate 0) vs a local-guard gate.
  const local = await spawnGate(await configFile('gate-local', { dpop: { replay: 'local', external_origin: ORIGIN } }));
  gates.push(local);
  const client = await makeKey('ES256', 'bench-client');
  const jkt = await calculateJwkThumbprint(client.publicJwk, 'sha256');
  const dpopLatency = async (g: GateProcess, tag: string): Promise<{ mean_ms: number; p99_ms: number }> => {
    const bound = await tokenNow(base.keys, { jti: `bench-dpop-${tag}`, cnf: { jkt } });
    const iat = Math.floor(Date.now() / 1000);
    const proofs = await Promise.all(
      Array.from({ length: M }, (_, i) =>
        new CompactSign(new TextEncoder().encode(JSON.stringify({ jti: `${tag}-${i}`, htm: 'GET', htu: `${ORIGIN}/orders/42`, iat, ath: accessTokenHash(bound) })))
          .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: publicJwkOf(client.publicJwk) } as never)
          .sign(client.privateKey),
      ),
    );
    const times: number[] = [];
    for (const p of proofs) {
      const s = performance.now();
      const r = await reason(g, { authorization: `DPoP ${bound}`, dpop: p });
      times.push(performance.now() - s);
      if (r !== 'granted') throw new Error(`DPoP request refused: ${r}`);
    }
    const rest = times.slice(Math.min(20, times.length / 10)); // warm-up (key import, connection) aside
    return { mean_ms: round(rest.reduce((x, y) => x + y, 0) / rest.length), p99_ms: round(pct(rest, 99)) };
  };
  const dpopRedis = await dpopLatency(gates[0]!, 'redis');
  const dpopLocal = await dpopLatency(local, 'local');

  const result = {
    time: new Date().toISOString(),
    machine: { cpus: cpus().length, loadavg: loadavg().map(round), note: 'shared, heavily loaded machine: latencies include scheduling delay' },
    node: process.version,
    redis: String(await redis.command('INFO', 'server')).match(/redis_version:(\S+)/)?.[1],
    gates: GATES,
    revocations: N,
    propagation_ms: { samples: delays.length, p50: round(pct(delays, 50)), p99: round(pct(delays, 99)), max: round(Math.max(...delays)) },
    cached_requests: M,
    redis_commands_per_cached_request: requestCommands / M,
    background_commands_meanwhile: backgroundCommands,
    dpop_requests: M,
    dpop_redis: dpopRedis,
    dpop_local: dpopLocal,
  };
  await mkdir(RESULTS, { recursive: true });
  const file = join(RESULTS, `fleet-${result.time.replace(/[:.]/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(
    [
      `revocation propagation, ${GATES} gates × ${N} revocations (201 → first refusal): p50 ${result.propagation_ms.p50} ms, p99 ${result.propagation_ms.p99} ms, max ${result.propagation_ms.max} ms`,
      `Redis commands per cached bearer request: ${result.redis_commands_per_cached_request} (${M} requests; ${backgroundCommands} background commands of ${GATES} gates meanwhile)`,
      `DPoP request latency: redis guard mean ${dpopRedis.mean_ms} ms p99 ${dpopRedis.p99_ms} ms; local guard mean ${dpopLocal.mean_ms} ms p99 ${dpopLocal.p99_ms} ms`,
      `load average ${result.machine.loadavg.join(' ')} on ${result.machine.cpus} CPUs; written ${file}`,
      '',
    ].join('\n'),
  );
} finally {
  clearTimeout(hardStop);
  await cleanup();
}
