/**
 * Micro-benchmark of DPoP (RFC 9449) in the decision core, no sockets: decisions per second for a
 * cached bearer token against the same cached token bound with cnf.jkt plus a fresh proof per
 * request (a proof is single-use, so its signature check is never cached), and the ratio.
 *   - bearer, cached token                (the baseline: no proof)
 *   - DPoP ES256 / EdDSA proof, cached token   (proof parse, claims, thumbprint, import, verify, replay insert)
 *   - DPoP refused: key not cnf.jkt        (thumbprint mismatch, before any signature work)
 *   - DPoP refused: replayed proof         (full check, refused at the replay cache)
 * Proofs are signed ahead of time (not measured); the clock is fixed so their iat stays fresh.
 * Run: node bench/micro/dpop.ts [--seconds N (default 2 per case)] [--rounds R (default 5)]
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { calculateJwkThumbprint, CompactSign } from 'jose';
import { publicJwkOf } from '../../src/issuing/key-files.ts';
import { validateConfig } from '../../src/config/load.ts';
import { FixedClock } from '../../src/core/clock.ts';
import type { DecisionInput } from '../../src/core/decision.ts';
import { accessTokenHash } from '../../src/core/token.ts';
import { Gate } from '../../src/gate.ts';
import { jwksOf, makeKey, tempDir, writeJson, type TestKey } from '../../test/fixtures/keys.ts';
import { AUDIENCE, ISSUER_A, LOCATION, sign } from '../../test/fixtures/tokens.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '2' }, rounds: { type: 'string', default: '5' } } });
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);

const issuerKey = await makeKey('ES256', 'bench');
const [es, ed, stranger] = await Promise.all([makeKey('ES256', 'client-es'), makeKey('EdDSA', 'client-ed'), makeKey('ES256', 'stranger')]);
const dir = await tempDir('jitgate-bench-dpop-');
// Removed however the run ends (a case that throws included): a bench leaves nothing in /tmp.
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
const jwks = await writeJson(dir, 'jwks.json', jwksOf(issuerKey));
const now = Math.floor(Date.now() / 1000);
const clock = new FixedClock(now * 1000);

const config = validateConfig(
  {
    upstream: { url: 'http://127.0.0.1:9' },
    service: { audience: AUDIENCE, location: LOCATION },
    issuers: [{ issuer: ISSUER_A, jwks_file: jwks, algorithms: ['ES256'], typ: 'jit+jwt' }],
    dpop: { external_origin: 'https://orders.internal', replay_cache_entries: 2_000_000 },
  },
  join(dir, 'bench.yaml'),
);
const gate = new Gate(config, join(dir, 'bench.yaml'), { clock });
await gate.start();

const bearerToken = await sign(issuerKey, { iat: now, exp: now + 600 });
const boundEs = await sign(issuerKey, { iat: now, exp: now + 600, jti: 'bound-es', cnf: { jkt: await calculateJwkThumbprint(es.publicJwk, 'sha256') } });
const boundEd = await sign(issuerKey, { iat: now, exp: now + 600, jti: 'bound-ed', cnf: { jkt: await calculateJwkThumbprint(ed.publicJwk, 'sha256') } });

const TARGET = '/orders/42/items?x=1';
const HTU = 'https://orders.internal/orders/42/items';
let seq = 0;
async function proof(key: TestKey, token: string): Promise<string> {
  const payload = { jti: `p-${++seq}`, htm: 'GET', htu: HTU, iat: now, ath: accessTokenHash(token) };
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ typ: 'dpop+jwt', alg: key.alg, jwk: publicJwkOf(key.publicJwk) })
    .sign(key.privateKey);
}
async function proofs(key: TestKey, token: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(await proof(key, token));
  return out;
}

function input(authorization: string, dpop: string | undefined): DecisionInput {
  return { method: 'GET', target: TARGET, authorization, authorizationCount: 1, dpop, dpopCount: dpop === undefined ? 0 : 1, methodOverride: false };
}

interface Result {
  readonly name: string;
  readonly mean: number;
  readonly rsd: number;
}

/**
 * `rounds` timed rounds of seconds/rounds each; `make(i)` must give a fresh input for every i
 * below `limit` (pre-signed proofs run out: a round stops there and counts what it did).
 */
async function measure(name: string, make: (i: number) => DecisionInput, expect: string, limit = Infinity): Promise<Result> {
  const first = await gate.decide(make(0));
  if (first.reason !== expect) throw new Error(`${name}: expected ${expect}, got ${first.reason}`);
  let i = 1;
  for (const end = Math.min(limit, 500); i < end; i++) await gate.decide(make(i)); // warm-up
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    const deadline = start + (seconds * 1000) / rounds;
    let n = 0;
    while (performance.now() < deadline && i + 64 <= limit) {
      for (let k = 0; k < 64; k++) await gate.decide(make(i++));
      n += 64;
    }
    if (n === 0) throw new Error(`${name}: ran out of pre-signed proofs; lower --seconds`);
    rates.push(n / ((performance.now() - start) / 1000));
  }
  const last = await gate.decide(make(Math.min(i, limit - 1)));
  if (limit === Infinity && last.reason !== expect) throw new Error(`${name}: drifted to ${last.reason}`);
  const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
  const sd = Math.sqrt(rates.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, rates.length - 1));
  return { name, mean, rsd: (sd / mean) * 100 };
}

// Enough proofs for the time budget at up to ~25k decisions/s.
const perCase = Math.ceil(25_000 * seconds) + 1000;
process.stderr.write(`signing ${3 * perCase} proofs…\n`);
const esProofs = await proofs(es, boundEs, perCase);
const edProofs = await proofs(ed, boundEd, perCase);
const strangerProofs = await proofs(stranger, boundEs, perCase);
const replayed = await proof(es, boundEs);
await gate.decide(input(`DPoP ${boundEs}`, replayed)); // used once: every later use is a replay

const bearerIn = input(`Bearer ${bearerToken}`, undefined);
const results = [
  await measure('bearer, cached token', () => bearerIn, 'granted'),
  await measure('DPoP ES256 proof, cached token', (i) => input(`DPoP ${boundEs}`, esProofs[i]!), 'granted', esProofs.length),
  await measure('DPoP EdDSA proof, cached token', (i) => input(`DPoP ${boundEd}`, edProofs[i]!), 'granted', edProofs.length),
  await measure('DPoP 401 key not cnf.jkt', (i) => input(`DPoP ${boundEs}`, strangerProofs[i]!), 'dpop_key_mismatch', strangerProofs.length),
  await measure('DPoP 401 replayed proof', () => input(`DPoP ${boundEs}`, replayed), 'dpop_replay'),
];
gate.stop();

const base = results[0]!.mean;
console.log(`node ${process.version}, ${process.arch}, ${seconds}s per case in ${rounds} rounds\n`);
console.log('| case                               | decisions/s  |    ±  | per call    | vs bearer |');
console.log('|------------------------------------|-------------:|------:|------------:|----------:|');
for (const r of results) {
  const rate = Math.round(r.mean).toLocaleString('en-US').padStart(12);
  const ratio = (r.mean / base).toFixed(3).padStart(8);
  console.log(`| ${r.name.padEnd(34)} | ${rate} | ${r.rsd.toFixed(1).padStart(4)}% | ${(1e6 / r.mean).toFixed(2).padStart(8)} µs | ${ratio}× |`);
}
