/**
 * Micro-benchmark of the certificate binding on the cached path (SPEC §11), in-process so the
 * shared machine's load hits every case alike: the decision for a cached token
 *   - unbound, no client certificate (the reference),
 *   - unbound, with a client certificate on the connection,
 *   - bound (cnf.x5t#S256) with the matching certificate,
 *   - bound with service.spiffe_subject on as well.
 * Cases run in interleaved slices (ABCD DCBA …); each reports the median ns per decision over the
 * slices and its ratio to the reference. Target: bound ≤ 1.02 × unbound (same connection).
 * Run: node bench/micro/cert-binding.ts [--slices 20] [--ms 200]
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { validateConfig } from '../../src/config/load.ts';
import type { ClientCert } from '../../src/core/cert-binding.ts';
import type { DecisionInput } from '../../src/core/decision.ts';
import { Gate } from '../../src/gate.ts';
import { jwksOf, makeKey, tempDir, writeJson } from '../../test/fixtures/keys.ts';
import { AUDIENCE, ISSUER_A, LOCATION, sign } from '../../test/fixtures/tokens.ts';
import { median } from '../median.ts';

const { values } = parseArgs({ options: { slices: { type: 'string', default: '20' }, ms: { type: 'string', default: '200' } } });
const slices = Number(values.slices);
const sliceMs = Number(values.ms);

const key = await makeKey('ES256', 'bench');
const dir = await tempDir('jitgate-bench-');
try {
  const jwks = await writeJson(dir, 'jwks.json', jwksOf(key));
  const gateWith = async (spiffe: boolean): Promise<Gate> => {
    const config = validateConfig(
      {
        upstream: { url: 'http://127.0.0.1:9' },
        service: { audience: AUDIENCE, location: LOCATION, spiffe_subject: spiffe },
        issuers: [{ issuer: ISSUER_A, jwks_file: jwks, algorithms: ['ES256'], typ: 'jit+jwt' }],
      },
      join(dir, 'bench.yaml'),
    );
    const g = new Gate(config, join(dir, 'bench.yaml'));
    await g.start();
    return g;
  };
  const [plain, spiffe] = await Promise.all([gateWith(false), gateWith(true)]);

  const x5t = Buffer.alloc(32, 9).toString('base64url');
  const cert: ClientCert = Object.freeze({ sha256: x5t, spiffeId: 'spiffe://prod/ci-deployer', notBeforeMs: 0, notAfterMs: Number.MAX_SAFE_INTEGER });
  const now = Math.floor(Date.now() / 1000);
  const unbound = await sign(key, { iat: now, exp: now + 600 });
  const bound = await sign(key, { iat: now, exp: now + 600, cnf: { 'x5t#S256': x5t } });
  const input = (tok: string, clientCert?: ClientCert): DecisionInput => ({
    method: 'GET', target: '/orders/42/items?x=1', authorization: `Bearer ${tok}`, authorizationCount: 1, dpop: undefined, dpopCount: 0, methodOverride: false, clientCert,
  });
  const cases: [string, Gate, DecisionInput][] = [
    ['unbound, no certificate', plain, input(unbound)],
    ['unbound, certificate on the connection', plain, input(unbound, cert)],
    ['bound, matching certificate', plain, input(bound, cert)],
    ['bound + spiffe_subject', spiffe, input(bound, cert)],
  ];
  // Fill the caches, and check each case decides what it claims to (synchronously: a cache hit).
  for (const [name, g, i] of cases) {
    await g.decide(i);
    const d = g.decide(i);
    if (d instanceof Promise || d.reason !== 'granted') throw new Error(`${name}: not a synchronous cached allow`);
  }
  const samples = cases.map(() => [] as number[]);
  for (let s = 0; s < slices; s++) {
    const order = s % 2 === 0 ? cases.map((_, i) => i) : cases.map((_, i) => cases.length - 1 - i);
    for (const c of order) {
      const [, g, i] = cases[c]!;
      const deadline = performance.now() + sliceMs;
      let n = 0;
      const t0 = performance.now();
      while (performance.now() < deadline) {
        for (let k = 0; k < 1000; k++) g.decide(i);
        n += 1000;
      }
      samples[c]!.push(((performance.now() - t0) * 1e6) / n);
    }
  }
  const ref = median(samples[0]!);
  console.log(`node ${process.version}, ${slices} interleaved slices of ${sliceMs} ms per case\n`);
  console.log('| case | ns/decision (median) | × unbound, no cert |');
  console.log('|---|---:|---:|');
  cases.forEach(([name], c) => console.log(`| ${name} | ${median(samples[c]!).toFixed(0)} | ${(median(samples[c]!) / ref).toFixed(3)} |`));
  const boundVsUnbound = median(samples[2]!) / median(samples[1]!);
  console.log(`\nbound vs unbound on the same connection: ${boundVsUnbound.toFixed(3)} × (target ≤ 1.02: ${boundVsUnbound <= 1.02 ? 'met' : 'NOT met'})`);
  plain.stop();
  spiffe.stop();
} finally {
  await rm(dir, { recursive: true, force: true });
}
