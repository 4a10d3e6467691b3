/**
 * Micro-benchmark of what SPEC §12 adds to a cached allow, in-process and in CPU time (robust on a
 * shared machine where req/s is not):
 *   - one audit line, plain vs hash-chained (`log.audit_chain`: seq/prev inserted, one SHA-256);
 *   - one cached-allow decision, without vs with the anomaly watch observing decisions.
 * A and B alternate in short blocks and each reports its median block, so load that comes and goes
 * hits both alike. Compare the added µs with the macro bench's server CPU µs/req for allow-hot.
 * Run: node bench/micro/section12.ts [--rounds N]   (through npm so Node 24 is first on PATH)
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { AnomalyWatch } from '../../src/anomaly/anomaly-watch.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { Decision, DecisionInput } from '../../src/core/decision.ts';
import { Gate } from '../../src/gate.ts';
import { AuditLog, type AuditRecord } from '../../src/observability/audit.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { jwksOf, makeKey, tempDir, writeJson } from '../../test/fixtures/keys.ts';
import { AUDIENCE, ISSUER_A, LOCATION, sign } from '../../test/fixtures/tokens.ts';
import { median } from '../median.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '30' } } });
const rounds = Number(values.rounds);
const BLOCK = 20_000;

const key = await makeKey('ES256', 'bench');
const dir = await tempDir('jitgate-bench-');
// Removed however the run ends (a case that throws included): a bench leaves nothing in /tmp.
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
const jwks = await writeJson(dir, 'jwks.json', jwksOf(key));
const file = join(dir, 'bench.yaml');
const config = validateConfig(
  {
    upstream: { url: 'http://127.0.0.1:9' },
    service: { audience: AUDIENCE, location: LOCATION },
    issuers: [{ issuer: ISSUER_A, jwks_file: jwks, algorithms: ['ES256'], typ: 'jit+jwt' }],
    revocation: { journal: join(dir, 'journal') },
    anomaly: { deny_threshold: 5, window: '1m' },
  },
  file,
);
const now = Math.floor(Date.now() / 1000);
const token = await sign(key, { iat: now, exp: now + 600 });
const input: DecisionInput = { method: 'GET', target: '/orders/42/items?x=1', authorization: `Bearer ${token}`, authorizationCount: 1, dpop: undefined, dpopCount: 0, methodOverride: false };

const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });
const plainAudit = new AuditLog(createLogger({ level: 'info', destination: 'stdout' }, sink()));
const chainedAudit = new AuditLog(createLogger({ level: 'info', destination: 'stdout' }, sink()));
await chainedAudit.startChain({ destination: 'stdout' });

const plainGate = new Gate(config, file);
const watchedGate = new Gate(config, file);
await Promise.all([plainGate.start(), watchedGate.start()]);
const metrics = new Metrics({ defaultMetrics: false });
const logger = createLogger({ level: 'warn', destination: 'stdout' }, sink());
watchedGate.observeRefusals(new AnomalyWatch(config.anomaly!, { gate: watchedGate, store: { append: async () => {} }, audit: plainAudit, metrics, logger, clock: watchedGate.clock }));

// The first decision verifies (a promise) and fills each gate's cache; every later one is the cached path.
const decision: Decision = await plainGate.decide(input);
if (decision.kind !== 'allow' || (await watchedGate.decide(input)).kind !== 'allow') throw new Error('expected an allow');
if (plainGate.decide(input) instanceof Promise || watchedGate.decide(input) instanceof Promise) throw new Error('expected a cached (synchronous) allow');
const record: AuditRecord = { transport: 'proxy', method: 'GET', decision, status: 200, latencyMs: 0.123, client: '127.0.0.1' };

/** CPU µs per operation over one block. */
function block(op: () => void): number {
  const c0 = process.cpuUsage();
  for (let i = 0; i < BLOCK; i++) op();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / BLOCK;
}

function compare(name: string, a: () => void, b: () => void): void {
  for (let i = 0; i < 3; i++) (block(a), block(b)); // warm-up: both compiled before anything counts
  const as: number[] = [];
  const bs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) (as.push(block(a)), bs.push(block(b)));
    else (bs.push(block(b)), as.push(block(a)));
  }
  const ma = median(as);
  const mb = median(bs);
  console.log(`| ${name.padEnd(44)} | ${ma.toFixed(3).padStart(8)} | ${mb.toFixed(3).padStart(8)} | ${(mb - ma >= 0 ? '+' : '') + (mb - ma).toFixed(3).padStart(7)} |`);
}

console.log(`node ${process.version}, ${rounds} alternating rounds of ${BLOCK} operations, CPU µs per operation (median round)\n`);
console.log('| operation                                    | A µs     | B µs     | B − A   |');
console.log('|----------------------------------------------|---------:|---------:|--------:|');
compare('audit line: A plain, B hash-chained', () => plainAudit.record(record), () => chainedAudit.record(record));
compare('cached allow decide: A plain, B anomaly watch', () => plainGate.decide(input), () => watchedGate.decide(input));
plainGate.stop();
watchedGate.stop();
