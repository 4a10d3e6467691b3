/**
 * Micro-benchmark of the decision core (no sockets): decisions per second for
 *   - a cached token (the hot path: canonicalize, cache hit, expiry + revocation, grant match),
 *   - first-time verification (cache disabled: parse, ES256 signature, claims, grant compile),
 *   - garbage tokens (refused before any crypto),
 *   - a 403 on a cached token.
 * Run: npm run bench:micro   (flags: --seconds N, default 2 per case)
 */
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { validateConfig } from '../../src/config/load.ts';
import type { DecisionInput } from '../../src/core/decision.ts';
import { Gate } from '../../src/gate.ts';
import { jwksOf, makeKey, tempDir, writeJson } from '../../test/fixtures/keys.ts';
import { AUDIENCE, ISSUER_A, LOCATION, sign } from '../../test/fixtures/tokens.ts';
import { join } from 'node:path';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '2' } } });
const seconds = Number(values.seconds);

const key = await makeKey('ES256', 'bench');
const dir = await tempDir('jitgate-bench-');
// Removed however the run ends (a case that throws included): a bench leaves nothing in /tmp.
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
const jwks = await writeJson(dir, 'jwks.json', jwksOf(key));

async function gateWith(cacheEntries: number): Promise<Gate> {
  const config = validateConfig(
    {
      upstream: { url: 'http://127.0.0.1:9' },
      service: { audience: AUDIENCE, location: LOCATION },
      issuers: [{ issuer: ISSUER_A, jwks_file: jwks, algorithms: ['ES256'], typ: 'jit+jwt' }],
      cache: { max_entries: cacheEntries },
    },
    join(dir, 'bench.yaml'),
  );
  const gate = new Gate(config, join(dir, 'bench.yaml'));
  await gate.start();
  return gate;
}

const now = Math.floor(Date.now() / 1000);
const token = await sign(key, { iat: now, exp: now + 600 });
const input = (method: string, target: string, tok: string): DecisionInput => ({
  method,
  target,
  authorization: `Bearer ${tok}`,
  authorizationCount: 1,
  dpop: undefined,
  dpopCount: 0,
  methodOverride: false,
});

async function measure(name: string, gate: Gate, make: (i: number) => DecisionInput, expect: string): Promise<void> {
  // Warm-up, and a check that the case decides what it claims to.
  const first = await gate.decide(make(0));
  if (first.reason !== expect) throw new Error(`${name}: expected ${expect}, got ${first.reason}`);
  for (let i = 0; i < 2000; i++) await gate.decide(make(i));
  const deadline = performance.now() + seconds * 1000;
  let n = 0;
  const start = performance.now();
  while (performance.now() < deadline) {
    for (let i = 0; i < 256; i++) await gate.decide(make(n + i));
    n += 256;
  }
  const elapsed = (performance.now() - start) / 1000;
  const rate = n / elapsed;
  console.log(`| ${name.padEnd(34)} | ${Math.round(rate).toLocaleString('en-US').padStart(12)} | ${(1e6 / rate).toFixed(2).padStart(8)} µs |`);
}

const cached = await gateWith(10_000);
const uncached = await gateWith(0);
const allow = input('GET', '/orders/42/items?x=1', token);
const outside = input('GET', '/orders/43', token);
const garbage = input('GET', '/orders/42', 'not-a-jwt');

console.log(`node ${process.version}, ${seconds}s per case\n`);
console.log('| case                               | decisions/s  | per call    |');
console.log('|------------------------------------|-------------:|------------:|');
await measure('allow, cached token', cached, () => allow, 'granted');
await measure('403 outside grant, cached token', cached, () => outside, 'path_not_granted');
await measure('401 garbage token (no crypto)', cached, () => garbage, 'malformed_token');
await measure('allow, first-time ES256 verify', uncached, () => allow, 'granted');
cached.stop();
uncached.stop();
