/**
 * What counting a refusal for the fleet costs (SPEC §12 on §9, docs/anomaly-and-audit.md): one
 * RedisRefusalCounter.add — its MULTI (and SET NX once a window is full) on a real redis-server (Debian `redis-server`) over
 * the gate's own RedisLink — as a gate with `anomaly` and `revocation.redis` runs it. Two figures,
 * each the median of `--rounds` blocks of `--n` counts, keys rotating through 10,000 token identities:
 *   - one round trip at a time: the gate's CPU and the wall time per refusal;
 *   - 50 in flight (a burst of refusals): the gate's CPU per refusal.
 * Beside each, Redis's own CPU per refusal (INFO cpu, before and after the block). The count is a
 * write, so Redis's AOF policy shows: `--appendfsync always` (the default here, as the tests and
 * docs/fleet.md recommend for revocations) fsyncs once per count, or per batch of counts in a burst.
 *
 * Run: npx node bench/micro/anomaly-redis.ts [--rounds 7] [--n 4000] [--appendfsync always|everysec]   (taskset -c 0 for one core)
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { redisKeys } from '../../src/fleet/redis-layout.ts';
import { RedisLink } from '../../src/fleet/redis-link.ts';
import { RedisRefusalCounter } from '../../src/fleet/redis-refusal-counter.ts';
import { startRedis } from '../../test/fixtures/redis.ts';
import { median } from '../median.ts';
import { inFlight } from './in-flight.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, n: { type: 'string', default: '4000' }, appendfsync: { type: 'string', default: 'always' } } });
const rounds = Number(values.rounds);
const n = Number(values.n);

const redis = await startRedis(['--appendfsync', values.appendfsync]);
const link = new RedisLink({ url: redis.url, connectTimeoutMs: 5000, commandTimeoutMs: 2000, name: 'bench' });
try {
  await link.connect();
  // The defaults an operator gets (docs/configuration.md): deny_threshold 5 in 1 m.
  const counter = new RedisRefusalCounter(link, redisKeys('bench:'), { threshold: 5, windowMs: 60_000 });
  const keys = Array.from({ length: 10_000 }, () => `https://issuer.example\n${randomBytes(16).toString('base64url')}`);
  let k = 0;
  const nextKey = (): string => keys[(k = (k + 1) % keys.length)]!;
  const redisCpuUs = async (): Promise<number> => {
    const info = String(await redis.command('INFO', 'cpu'));
    const get = (name: string): number => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? Number.NaN);
    return (get('used_cpu_user') + get('used_cpu_sys')) * 1e6;
  };

  const cases: [string, () => Promise<void>, boolean][] = [
    [
      'in Redis, one at a time',
      async () => {
        for (let i = 0; i < n; i++) await counter.add(nextKey(), Date.now());
      },
      true,
    ],
    [
      'in Redis, 50 in flight',
      () => inFlight(n, 50, () => counter.add(nextKey(), Date.now())),
      false,
    ],
  ];
  const rows = new Map(cases.map(([name]) => [name, { gate: [] as number[], redis: [] as number[], wall: [] as number[] }]));
  for (let r = -1; r < rounds; r++) {
    for (const [name, run] of r % 2 === 0 ? cases : [...cases].reverse()) {
      const r0 = await redisCpuUs();
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await run();
      const wallUs = ((performance.now() - t0) * 1000) / n;
      const c = process.cpuUsage(c0);
      const redisUs = ((await redisCpuUs()) - r0) / n;
      if (r < 0) continue; // the first block of each case warms up
      const row = rows.get(name)!;
      row.gate.push((c.user + c.system) / n);
      row.redis.push(redisUs);
      row.wall.push(wallUs);
    }
    if (r >= 0) process.stderr.write(`round ${r + 1}/${rounds} done\n`);
  }
  console.log(`node ${process.version}, redis appendfsync ${values.appendfsync}, ${n} refusals per block, median of ${rounds} blocks; CPU µs per counted refusal\n`);
  console.log('| counting | gate CPU µs | Redis CPU µs | one refusal, wall µs |');
  console.log('|---|--:|--:|--:|');
  for (const [name, , latency] of cases) {
    const row = rows.get(name)!;
    console.log(`| ${name} | ${median(row.gate).toFixed(2)} | ${median(row.redis).toFixed(2)} | ${latency ? median(row.wall).toFixed(1) : '–'} |`);
  }
} finally {
  link.stop();
  await redis.remove();
}
