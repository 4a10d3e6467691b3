/**
 * A Redis that may evict what a fleet keeps there (docs/fleet.md "Memory"): a probe set maxmemory with an
 * evicting policy on a live fleet, and a replayed DPoP proof and revoked tokens were allowed with no gate noticing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { evictionRisk } from '../../src/fleet/redis-eviction.ts';
import { logged } from '../fixtures/built-gate.ts';
import { startRedis } from '../fixtures/redis.ts';
import { startRedisGates, type RedisGates } from '../fixtures/redis-gates.ts';

const info = (maxmemory: number, policy: string) => `# Memory\r\nused_memory:1000\r\nmaxmemory:${maxmemory}\r\nmaxmemory_human:0B\r\nmaxmemory_policy:${policy}\r\n`;
const all = { revocations: true, dpopReplay: true, nonces: true, anomalyCounts: true };
const none = { revocations: false, dpopReplay: false, nonces: false, anomalyCounts: false };

describe('evictionRisk', () => {
  it('no limit or noeviction: nothing can be evicted', () => {
    expect(evictionRisk(info(0, 'allkeys-lru'), all)).toBeUndefined();
    expect(evictionRisk(info(1 << 20, 'noeviction'), all)).toBeUndefined();
  });

  it('volatile-*: the DPoP replay records (keys with a TTL), not the revocation set', () => {
    expect(evictionRisk(info(1 << 20, 'volatile-lru'), { ...none, dpopReplay: true, revocations: true })).toMatch(/^maxmemory-policy volatile-lru with maxmemory 1048576: Redis may evict DPoP replay records \(a used proof is accepted again at another gate\); set maxmemory-policy noeviction/);
    expect(evictionRisk(info(1 << 20, 'volatile-ttl'), { ...none, revocations: true, nonces: true })).toBeUndefined();
    // A re-probe: the anomaly counts have a TTL too, and were evicted between refusals under volatile-lru.
    expect(evictionRisk(info(1 << 20, 'volatile-lru'), { ...none, revocations: true, anomalyCounts: true })).toMatch(/evict anomaly refusal counts \(a probing token is never revoked\)/);
  });

  it('allkeys-*: the revocation set and the nonce key too', () => {
    const risk = evictionRisk(info(1 << 20, 'allkeys-random'), all);
    expect(risk).toMatch(/DPoP replay records .* and the revocation set and log .* and the fleet DPoP nonce key/);
    expect(evictionRisk(info(1 << 20, 'allkeys-lfu'), { ...none, revocations: true })).toMatch(/evict the revocation set and log/);
  });

  it('an INFO without the fields (another server) is no verdict', () => {
    expect(evictionRisk('# Memory\r\nused_memory:1\r\n', all)).toBeUndefined();
  });
});

describe('a gate on an evicting Redis', () => {
  let fleet: RedisGates;
  beforeAll(async () => {
    fleet = await startRedisGates();
  });
  afterEach(async () => fleet.runDeferred());
  afterAll(async () => fleet?.remove());

  it('allkeys-lru with maxmemory: not ready, naming the policy; ready again once the policy is noeviction', async () => {
    const lone = await startRedis(['--appendonly', 'no', '--maxmemory', '100mb', '--maxmemory-policy', 'allkeys-lru']);
    fleet.defer(() => lone.remove());
    const g = await fleet.gate({ prefix: 'evicting:', redis: { url: lone.url } });
    const problems = () => g.gate.readiness().problems.join('\n');
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && !/maxmemory-policy/.test(problems())) await new Promise((r) => setTimeout(r, 20));
    expect(g.gate.readiness().ready).toBe(false);
    expect(problems()).toMatch(/maxmemory-policy allkeys-lru with maxmemory 104857600: Redis may evict the revocation set and log/);
    expect(logged(g.logs, 'maxmemory-policy allkeys-lru')[0]).toMatchObject({ level: 'error' });
    await lone.command('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    // Read again at each new connection (and every 30 s).
    await lone.command('CLIENT', 'KILL', 'TYPE', 'normal');
    const back = Date.now() + 8000;
    while (Date.now() < back && !g.gate.readiness().ready) await new Promise((r) => setTimeout(r, 50));
    expect(g.gate.readiness()).toMatchObject({ ready: true });
    expect(logged(g.logs, 'redis no longer evicts what this gate keeps there')).toHaveLength(1);
    // The kill is said as a lost connection, not as a failed operation named "connect" (a probe read it so).
    expect(logged(g.logs, 'redis command connection lost or not made; reconnecting')[0]).toMatchObject({ level: 'warn', op: 'connect' });
  }, 30_000);
});
