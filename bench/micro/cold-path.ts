/**
 * The cold path piece by piece, in one process, against the minimal sync-verify gate's own check
 * (bench/macro/sync-verify.ts) on the same 10,000 rotating bench tokens: what jitgate's decision on
 * a cache miss costs beyond "parse + node:crypto verify + claims", and what the proxy adds per new
 * token (audit line with a token seen for the first time, identity headers). Rounds interleave the
 * measurements, so a loaded machine slows all of them alike; the best round of each is reported.
 *
 * Run: node bench/micro/cold-path.ts [--rounds 7] [--n 3000]   (taskset -c 0 to stay on one core)
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { syncVerifier } from '../macro/sync-verify.ts';
import { allocatedPerCall } from './allocated.ts';
import { bestCpuMicrosPerCall } from './cpu-per-call.ts';
import { AUDIENCE, ISSUER, makeFixtures } from '../macro/fixtures.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { Allow, Decision } from '../../src/core/decision.ts';
import { parseCompactJws } from '../../src/core/jws-compact.ts';
import { compileGrants } from '../../src/core/grant.ts';
import { verifyToken } from '../../src/core/token.ts';
import { Decider } from '../../src/core/decide.ts';
import { VerifiedTokenCache } from '../../src/cache/verified-tokens.ts';
import { Gate } from '../../src/gate.ts';
import { AuditLog } from '../../src/observability/audit.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { inputFromRawHeaders } from '../../src/transports/http-input.ts';
import { compileHeaderPolicy, upstreamHeaders } from '../../src/transports/proxy/hop-headers.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, n: { type: 'string', default: '3000' } } });
const rounds = Number(values.rounds);
const n = Number(values.n);

const fx = await makeFixtures({ alg: 'ES256', rotating: 10_000, ttlSeconds: 3600 });
try {
  const file = join(fx.dir, 'jitgate.yaml');
  const config = validateConfig(
    { upstream: { url: 'http://127.0.0.1:9' }, service: { audience: AUDIENCE }, issuers: [{ issuer: ISSUER, jwks_file: fx.jwksPath, algorithms: ['ES256'], typ: 'jit+jwt', max_ttl: '24h' }], cache: { max_entries: 100 } },
    file,
  );
  const gate = new Gate(config, file);
  await gate.start();
  const tokens = fx.tokens.rotating;
  const raws = tokens.map((t) => ['Host', '127.0.0.1:8080', 'User-Agent', 'autocannon', 'Authorization', `Bearer ${t}`, 'Accept', '*/*', 'Connection', 'keep-alive']);
  const sync = syncVerifier(fx.jwksPath, ISSUER, AUDIENCE, '/orders/');
  const metrics = new Metrics({ defaultMetrics: false });
  const audit = new AuditLog(createLogger({ level: 'info', destination: 'stdout' } as never, { write: () => true } as never));
  const headers = compileHeaderPolicy(config);
  const policy = gate.policy;
  // The served gate's mode on one core is `batch`, which answers a miss in a later setImmediate. The minimal
  // gate's check is synchronous, so its peer here is the same decision in `sync` mode, over the gate's own policy.
  const decider = new Decider({ policy: { ...policy, verifyMode: 'sync' }, clock: gate.clock, cache: new VerifiedTokenCache(config.cache.max_entries), revocation: gate.revocation });
  const now = Date.now();

  let i = 0;
  const next = (): number => (i = (i + 1) % tokens.length);
  const decide = (): Decision => {
    const d = decider.decide(inputFromRawHeaders(raws[next()]!, 'GET', '/orders/small', '127.0.0.1', 'http'));
    if (d instanceof Promise || d.kind !== 'allow') throw new Error('the bench token is not allowed synchronously');
    return d;
  };
  // Decisions of distinct tokens, for the per-token pieces after the decision.
  const allows: Allow[] = [];
  for (let k = 0; k < 10_000; k++) allows.push(decide() as Allow);

  const cases: [string, () => unknown][] = [
    ['minimal gate check (parse + verify + claims)', () => sync.check(`Bearer ${tokens[next()]}`, 'GET', '/orders/small')],
    ['jitgate verifyToken (parse + verify + claims + grants)', () => verifyToken(tokens[next()]!, policy, now)],
    ['jitgate decide, cache miss (cache 100)', decide],
    ['parseCompactJws', () => parseCompactJws(tokens[next()]!)],
    ['compileGrants', () => compileGrants(payloads[next()]!.authorization_details, policy.grant)],
    ['audit.record, a token not seen before', () => audit.record({ transport: 'proxy', method: 'GET', decision: allows[next()]!, status: 200, latencyMs: 0.5, client: '127.0.0.1' })],
    ['metrics.recordDecision', () => metrics.recordDecision('proxy', allows[next()]!, 0.0005)],
    ['upstreamHeaders, a token not seen before', () => upstreamHeaders(raws[i]!, headers, allows[next()]!.token!.identity, '127.0.0.1')],
  ];
  const payloads = tokens.map((t) => parseCompactJws(t)!.payload);
  const best = bestCpuMicrosPerCall(cases.map(([name, f]) => ({ name, f, n })), rounds, 300);
  console.log(`node ${process.version}, ${tokens.length} rotating tokens, best of ${rounds} interleaved rounds of ${n}\n`);
  console.log('| piece of a cold request | CPU µs | heap bytes allocated per call |');
  console.log('|---|--:|--:|');
  for (const [name, f] of cases) console.log(`| ${name} | ${best.get(name)!.toFixed(2)} | ${allocatedPerCall(f).toFixed(0)} |`);
  gate.stop();
} finally {
  await rm(fx.dir, { recursive: true, force: true });
}
