/**
 * `workers: 2` with fleet state on Redis (SPEC §9, docs/fleet.md "workers > 1"): each worker follows
 * Redis on its own connections and the primary writes POSTed entries there, without a journal.
 * A revocation posted to the primary is refused by both workers; a DPoP proof used once is refused
 * when replayed (whichever worker gets it); /readyz is ready. With `anomaly`, the workers count
 * refusals in Redis (as every gate on it does), not at the primary.
 */
import { calculateJwkThumbprint, CompactSign } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publicJwkOf } from '../../src/issuing/key-files.ts';
import { accessTokenHash } from '../../src/core/token.ts';
import { makeKey } from '../fixtures/keys.ts';
import type { RedisServer } from '../fixtures/redis.ts';
import { pidsOnLines, send, tokenNow, type GateProcess, type RecordingUpstream, type writeGateConfig } from '../fixtures/servers.ts';
import { ADMIN_TOKEN, startClusterScene, stopClusterScene } from './cluster-scene.ts';

const ORIGIN = 'http://orders.internal';
let redis: RedisServer;
let upstream: RecordingUpstream;
let gate: GateProcess;
let cfg: Awaited<ReturnType<typeof writeGateConfig>>;

beforeAll(async () => {
  ({ redis, upstream, cfg, gate } = await startClusterScene((c) => {
    c.revocation = { redis: true, max_stale: '10s' };
    c.dpop = { replay: 'redis', external_origin: ORIGIN };
    c.log = { level: 'info', audit: true, destination: 'stdout' };
    c.anomaly = { deny_threshold: 4, window: '1m', revoke: 'jti' };
  }));
}, 90_000);

afterAll(() => stopClusterScene({ gate, upstream, redis, cfg }));

describe('workers: 2 on Redis', () => {
  it('a revocation posted to the primary (no journal) is refused by every worker; a replayed proof is refused', async () => {
    expect((await fetch(`${gate.adminUrl}/readyz`)).status).toBe(200);
    const token = await tokenNow(cfg.keys, { jti: 'cluster-1' });
    const res = await fetch(`${gate.adminUrl}/revocations`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ jti: 'cluster-1' }) });
    expect(res.status).toBe(201);
    expect(Number(await redis.command('ZCARD', 'jitgate:revocations'))).toBe(1);
    const started = Date.now();
    let refusedInARow = 0;
    // Fresh connections are handed out round-robin: 10 refusals in a row cover both workers.
    while (refusedInARow < 10) {
      const r = await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } });
      refusedInARow = r.status === 401 && JSON.parse(r.text).reason === 'revoked' ? refusedInARow + 1 : 0;
      if (Date.now() - started > 5000) throw new Error('not refused by every worker within 5 s');
    }
    expect((await pidsOnLines(gate, (l) => l.type === 'audit' && l.reason === 'revoked', 2)).size).toBe(2);

    const client = await makeKey('ES256', 'cluster-client');
    const bound = await tokenNow(cfg.keys, { jti: 'cluster-dpop', cnf: { jkt: await calculateJwkThumbprint(client.publicJwk, 'sha256') } });
    const proof = await new CompactSign(new TextEncoder().encode(JSON.stringify({ jti: 'cluster-proof', htm: 'GET', htu: `${ORIGIN}/orders/42`, iat: Math.floor(Date.now() / 1000), ath: accessTokenHash(bound) })))
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: publicJwkOf(client.publicJwk) } as never)
      .sign(client.privateKey);
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push((await send(gate.url, '/orders/42', { headers: { authorization: `DPoP ${bound}`, dpop: proof } })).status);
    expect(answers).toEqual([200, 401, 401, 401]);
  }, 30_000);

  it('refusals made through both workers are counted together in Redis and revoke at the threshold', async () => {
    const token = await tokenNow(cfg.keys, { jti: 'cluster-probe' });
    const auth = { authorization: `Bearer ${token}` };
    // Fresh connections alternate between the workers: these four refusals come from both.
    for (let i = 0; i < 4; i++) expect((await send(gate.url, '/admin', { headers: auth })).status).toBe(403);
    const started = Date.now();
    while ((await send(gate.url, '/orders/42', { headers: auth })).status !== 401) {
      if (Date.now() - started > 5000) throw new Error('not revoked within 5 s of the fourth refusal');
    }
    // The count lives in Redis: the workers did not count at the primary.
    expect(((await redis.command('KEYS', 'jitgate:anomaly:*')) as string[]).length).toBeGreaterThan(0);
    expect((await pidsOnLines(gate, (l) => l.type === 'audit' && l.reason === 'path_not_granted' && l.jti === 'cluster-probe', 2)).size).toBe(2);
  }, 30_000);

  it('GET /revocations at the primary counts what the workers enforce from Redis', async () => {
    const res = await fetch(`${gate.adminUrl}/revocations`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const body = (await res.json()) as { entries: number; sources: Array<{ kind: string; entries: number }> };
    const inRedis = Number(await redis.command('ZCARD', 'jitgate:revocations'));
    expect(inRedis).toBeGreaterThanOrEqual(2); // cluster-1 and the anomaly revocation above
    expect(body.entries).toBe(inRedis);
    expect(body.sources.map((s) => [s.kind, s.entries])).toEqual([['redis', inRedis]]);
  });

  // Last: it kills this file's Redis.
  it("the primary's idle Redis writer: a connection Redis closed is replaced at once (the next POST is 201); Redis away is listed by /readyz", async () => {
    const primaryId = async (): Promise<string | undefined> => /id=(\d+) [^\n]*name=jitgate-primary /.exec(String(await redis.command('CLIENT', 'LIST')))?.[1];
    const post = (jti: string): Promise<Response> =>
      fetch(`${gate.adminUrl}/revocations`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ jti }) });
    const until = async (what: string, ok: () => Promise<boolean>, ms = 3000): Promise<void> => {
      const started = Date.now();
      while (!(await ok())) {
        if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const primaryListed = async (): Promise<boolean> => /primary: redis \S+ prefix jitgate: not connected/.test(await (await fetch(`${gate.adminUrl}/readyz`)).text());
    const before = await primaryId();
    expect(before).toBeDefined();
    await redis.command('CLIENT', 'KILL', 'ID', before!);
    // The new connection's name shows in CLIENT LIST during its handshake, a PING before the gate
    // adopts it; until then a POST is rightly 503. Adopted is what /readyz no longer listing it says.
    await until('primary reconnected', async () => ![undefined, before].includes(await primaryId()) && !(await primaryListed()));
    expect((await post('after-kill')).status).toBe(201);

    await redis.kill();
    await until('/readyz lists the primary', primaryListed);
    await redis.restart();
    await until('primary back', async () => (await primaryId()) !== undefined && !(await primaryListed()), 8000);
    expect((await post('after-restart')).status).toBe(201);
  }, 30_000);
});
