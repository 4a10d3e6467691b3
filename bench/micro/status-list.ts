/**
 * Micro-benchmark of the status-list check on the hot path (SPEC §10, issue 15): decisions per
 * CPU-second for one cached token without a status claim and an equally long one with it, on one Gate,
 * in alternating slices (ABBA…) so that drift on a shared machine hits both alike. Process CPU time,
 * not wall time, is counted (a loaded machine deschedules this process for most of the wall time).
 * Reports the median ratio of the slices; the issue's target is ≤ 2 % apart.
 * Run: node bench/micro/status-list.ts [--slices N] [--ms M]   (through npx/npm for Node 24)
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { exportJWK } from 'jose';
import { signStatusList } from '../../src/cli/status-list.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { DecisionInput } from '../../src/core/decision.ts';
import { Gate } from '../../src/gate.ts';
import { jwksOf, makeKey, tempDir, writeJson } from '../../test/fixtures/keys.ts';
import { AUDIENCE, ISSUER_A, LOCATION, sign } from '../../test/fixtures/tokens.ts';
import { median } from '../median.ts';

const { values } = parseArgs({ options: { slices: { type: 'string', default: '20' }, ms: { type: 'string', default: '300' } } });
const slices = Number(values.slices);
const sliceMs = Number(values.ms);

const key = await makeKey('ES256', 'bench');
const dir = await tempDir('jitgate-bench-');
const jwks = await writeJson(dir, 'jwks.json', jwksOf(key));

let list = '';
// Everything after the temp dir exists runs under try/finally, so a failed run leaves nothing behind.
const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/statuslist+jwt' }).end(list));
let gate: Gate | undefined;
try {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const uri = `${base}/status/1`;
  list = await signStatusList({ key: { ...(await exportJWK(key.privateKey)), kid: key.kid, alg: key.alg } as never, uri, bits: 1, size: 1 << 20, statuses: new Map([[7, 1]]) });

  const config = validateConfig(
    {
      upstream: { url: 'http://127.0.0.1:9' },
      service: { audience: AUDIENCE, location: LOCATION },
      issuers: [{ issuer: ISSUER_A, jwks_file: jwks, algorithms: ['ES256'], typ: 'jit+jwt', status_list: { allowed_uris: [`${base}/status/`] } }],
    },
    join(dir, 'bench.yaml'),
  );
  gate = new Gate(config, join(dir, 'bench.yaml'));
  await gate.start();
  const g = gate;

  const now = Math.floor(Date.now() / 1000);
  // The same length as the status token, so both rows hash and compare equally long strings: the
  // difference is the status check itself.
  const statusClaim = { status_list: { idx: 123_456, uri } };
  const plain = await sign(key, { iat: now, exp: now + 600, statux: { status_list: { idx: 123_456, uri } } });
  const withStatus = await sign(key, { iat: now, exp: now + 600, status: statusClaim });
  if (plain.length !== withStatus.length) throw new Error(`token lengths differ: ${plain.length} vs ${withStatus.length}`);
  const input = (tok: string): DecisionInput => ({ method: 'GET', target: '/orders/42', authorization: `Bearer ${tok}`, authorizationCount: 1, dpop: undefined, dpopCount: 0, methodOverride: false });
  const inputs = { plain: input(plain), status: input(withStatus) };

  for (const [name, i] of Object.entries(inputs)) {
    const d = await g.decide(i);
    if (d.reason !== 'granted') throw new Error(`${name}: expected granted, got ${d.reason}`);
  }

  /**
   * Decisions per CPU-second over one slice: process CPU time (user + system), not wall time, so the
   * time this process spends descheduled on a shared machine does not count. The cached path is
   * synchronous, so there is no await per decision.
   */
  function slice(i: DecisionInput): number {
    const deadline = performance.now() + sliceMs;
    let n = 0;
    const cpu0 = process.cpuUsage();
    while (performance.now() < deadline) {
      for (let k = 0; k < 512; k++) {
        const d = g.decide(i);
        if (d instanceof Promise || d.kind !== 'allow') throw new Error('the cached path must allow synchronously');
      }
      n += 512;
    }
    const cpu = process.cpuUsage(cpu0);
    return n / ((cpu.user + cpu.system) / 1e6);
  }

  for (let k = 0; k < 4; k++) slice(k % 2 === 0 ? inputs.plain : inputs.status); // warm-up
  const ratios: number[] = [];
  const rates = { plain: [] as number[], status: [] as number[] };
  for (let k = 0; k < slices; k++) {
    const order = k % 2 === 0 ? (['plain', 'status'] as const) : (['status', 'plain'] as const);
    const got: Record<string, number> = {};
    for (const name of order) got[name] = slice(inputs[name]);
    rates.plain.push(got.plain!);
    rates.status.push(got.status!);
    ratios.push(got.status! / got.plain!);
  }
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
  process.stdout.write(
    `cached decide, ${slices} alternating slices of ${sliceMs} ms, per CPU-second of this process (Node ${process.version}):\n` +
      `  without status claim: median ${fmt(median(rates.plain))} decisions/s (${(1e9 / median(rates.plain)).toFixed(0)} ns)\n` +
      `  with status claim:    median ${fmt(median(rates.status))} decisions/s (${(1e9 / median(rates.status)).toFixed(0)} ns)\n` +
      `  ratio with/without:   median ${median(ratios).toFixed(3)} (slices ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)}; target ≥ 0.98)\n`,
  );
} finally {
  gate?.stop();
  server.close();
  await rm(dir, { recursive: true, force: true });
}
