/**
 * The cached allow's own JavaScript, piece by piece, in process (issue 20 item 2): what jitgate
 * adds to a request beyond what the plain proxy does. Each piece runs hot (JIT-compiled, no
 * sockets), so these are lower bounds; the best of 5 rounds is printed because the box is shared.
 *   - inputFromRawHeaders: rawHeaders → DecisionInput
 *   - decide: the whole decision on a cached token (target parse, cache hit, expiry, revocation, grant)
 *   - metrics.recordDecision: the decision counter and latency histogram
 *   - upstreamHeaders: the upstream header list with the identity headers
 *   - audit.record: the audit line built and handed to a stream that drops it (the write itself —
 *     a file write per line — is what this cannot show; compare the bench's audit on/off rows)
 *   - audit.record → LineBatch → /dev/null: the same line through the real destination (64 KiB
 *     chunks, SonicBoom, fs.write on the thread pool), CPU of the whole process
 * Beside the CPU time, the heap bytes each call allocates (used heap before and after 200 calls, taken
 * from tries with no collection in between): unlike time, this does not move with the machine's load.
 * Run: npx node bench/micro/hot-path.ts
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { allocatedPerCall } from './allocated.ts';
import { bestCpuMicrosPerCall, type TimedPiece } from './cpu-per-call.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { Allow } from '../../src/core/decision.ts';
import { Gate } from '../../src/gate.ts';
import { AuditLog } from '../../src/observability/audit.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { inputFromRawHeaders } from '../../src/transports/http-input.ts';
import { compileHeaderPolicy, upstreamHeaders } from '../../src/transports/proxy/hop-headers.ts';
import { jwksOf, makeKey, tempDir, writeJson } from '../../test/fixtures/keys.ts';
import { AUDIENCE, ISSUER_A, LOCATION, sign } from '../../test/fixtures/tokens.ts';

const key = await makeKey('ES256', 'bench');
const dir = await tempDir('jitgate-bench-');
try {
  const jwks = await writeJson(dir, 'jwks.json', jwksOf(key));
  const file = join(dir, 'jitgate.yaml');
  const config = validateConfig(
    { upstream: { url: 'http://127.0.0.1:9' }, service: { audience: AUDIENCE, location: LOCATION }, issuers: [{ issuer: ISSUER_A, jwks_file: jwks, algorithms: ['ES256'], typ: 'jit+jwt' }] },
    file,
  );
  const gate = new Gate(config, file);
  await gate.start();
  const now = Math.floor(Date.now() / 1000);
  const token = await sign(key, { iat: now, exp: now + 600 });
  const raw = ['Host', '127.0.0.1:8080', 'User-Agent', 'autocannon', 'Authorization', `Bearer ${token}`, 'Accept', '*/*', 'Connection', 'keep-alive'];
  const input = (): ReturnType<typeof inputFromRawHeaders> => inputFromRawHeaders(raw, 'GET', '/orders/42', '127.0.0.1', 'http');
  const d = (await gate.decide(input())) as Allow;
  if (d.kind !== 'allow' || d.token === null) throw new Error(`the bench token is not allowed: ${d.reason}`);
  const identity = d.token.identity;
  const metrics = new Metrics({ defaultMetrics: false });
  const audit = new AuditLog(createLogger({ level: 'info', destination: 'stdout' } as never, { write: () => true } as never));
  const headers = compileHeaderPolicy(config);

  const pieces: TimedPiece[] = [
    { name: 'inputFromRawHeaders', n: 300_000, f: input },
    { name: 'decide (cached token)', n: 300_000, f: () => gate.decide(input()) },
    { name: 'metrics.recordDecision', n: 300_000, f: () => metrics.recordDecision('proxy', d, 0.0001) },
    { name: 'upstreamHeaders (with identity)', n: 300_000, f: () => upstreamHeaders(raw, headers, identity, '127.0.0.1') },
    { name: 'audit.record (line built, write dropped)', n: 300_000, f: () => audit.record({ transport: 'proxy', method: 'GET', decision: d, status: 200, latencyMs: 0.0123 }) },
  ];
  const best = bestCpuMicrosPerCall(pieces, 5, 20_000);
  const row = (name: string, micros: number, f: () => unknown): void => console.log(`| ${name.padEnd(38)} | ${micros.toFixed(3).padStart(7)} µs | ${allocatedPerCall(f).toFixed(0).padStart(6)} |`);
  console.log(`node ${process.version}, best of 5 rounds\n`);
  console.log('| piece of a cached allow                | CPU      | heap bytes allocated per call |');
  console.log('|----------------------------------------|---------:|--:|');
  for (const { name, f } of pieces) row(name, best.get(name)!, f);
  // The real destination (LineBatch over pino's SonicBoom) writing to /dev/null: the writes run on
  // the thread pool, whose CPU process.cpuUsage counts too; the loop yields every 1,000 lines so
  // that the writes complete (past 16 MiB pending, lines would be dropped instead).
  const real = new AuditLog(createLogger({ level: 'info', destination: '/dev/null' }));
  const line = (): void => real.record({ transport: 'proxy', method: 'GET', decision: d, status: 200, latencyMs: 0.0123 });
  let bestLine = Infinity;
  for (let r = 0; r < 6; r++) {
    const c0 = process.cpuUsage();
    for (let k = 0; k < 300; k++) {
      for (let i = 0; i < 1000; i++) line();
      await new Promise((ok) => setImmediate(ok));
    }
    await new Promise((ok) => setTimeout(ok, 50));
    const c = process.cpuUsage(c0);
    if (r > 0) bestLine = Math.min(bestLine, (c.user + c.system) / 300_000);
  }
  row('audit.record → LineBatch → /dev/null', bestLine, line);
  gate.stop();
} finally {
  await rm(dir, { recursive: true, force: true });
}
