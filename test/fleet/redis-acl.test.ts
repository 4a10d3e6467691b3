/**
 * The least-privilege Redis user docs/fleet.md gives operators, applied as written (the command is
 * read from the doc, so the two cannot drift) to the Debian redis-server the tests run: a gate
 * using every Redis feature (revocation.redis, dpop.replay: redis, dpop.use_nonce) starts with it,
 * revokes through it and accepts a DPoP proof once. Without one of its grants the gate stops at
 * startup with Redis's NOPERM, which shows each grant the doc lists is one the gate uses.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dpopProof } from '../fixtures/dpop-proof.ts';
import { runCli } from '../fixtures/cli.ts';
import { makeKey, type TestKey } from '../fixtures/keys.ts';
import { startRedis, type RedisServer } from '../fixtures/redis.ts';
import { send, spawnGate, startRecordingUpstream, tokenNow, writeGateConfig, type GateProcess, type RecordingUpstream } from '../fixtures/servers.ts';

const ORIGIN = 'http://orders.internal';
const ADMIN_TOKEN = 'acl-admin-token-0123456789';
const FLEET_DOC = new URL('../../docs/fleet.md', import.meta.url);

let redis: RedisServer;
let upstream: RecordingUpstream;
let client: TestKey;
let gate: GateProcess | undefined;
let base: Awaited<ReturnType<typeof writeGateConfig>>;

/** The `ACL SETUSER …` command of docs/fleet.md as arguments, continuation lines joined. */
async function documentedAcl(): Promise<string[]> {
  const doc = await readFile(FLEET_DOC, 'utf8');
  const m = /^\s*(ACL SETUSER (?:[^\n]*\\\n)*[^\n]*)/m.exec(doc);
  if (m === null) throw new Error('docs/fleet.md has no ACL SETUSER command');
  return m[1]!.replace(/\\\n/g, ' ').trim().split(/\s+/);
}

/** Creates `user` with the documented rules, its password swapped in, minus `drop`. */
async function createUser(user: string, password: string, ...drop: string[]): Promise<void> {
  const args = (await documentedAcl()).map((a) => (a === 'jitgate' ? user : a === '>LONG-RANDOM-PASSWORD' ? `>${password}` : a)).filter((a) => !drop.includes(a));
  expect(args.slice(0, 3)).toEqual(['ACL', 'SETUSER', user]);
  expect(await redis.command(...args)).toBe('OK');
}

async function configFor(name: string, user: string, password: string): Promise<string> {
  const file = join(base.dir, `${name}.yaml`);
  const tokenFile = join(base.dir, 'admin-token');
  await writeFile(tokenFile, `${ADMIN_TOKEN}\n`);
  await writeFile(
    file,
    JSON.stringify({
      ...base.raw,
      admin: { listen: { host: '127.0.0.1', port: 0 }, token_file: tokenFile },
      redis: { url: `redis://${user}:${password}@127.0.0.1:${redis.port}/0`, connect_timeout: '3s' },
    }),
  );
  return file;
}

beforeAll(async () => {
  [redis, upstream, client] = await Promise.all([startRedis(), startRecordingUpstream(), makeKey('ES256', 'client')]);
  base = await writeGateConfig(upstream.url, (c) => {
    c.revocation = { ...c.revocation, redis: true };
    c.dpop = { replay: 'redis', use_nonce: true, external_origin: ORIGIN };
    c.log = { level: 'info', audit: false, destination: 'stdout' };
    c.anomaly = { deny_threshold: 2, window: '1m', revoke: 'jti' };
  });
}, 60_000);

afterAll(async () => {
  if (gate !== undefined && gate.child.exitCode === null && gate.child.signalCode === null) gate.child.kill('SIGKILL');
  await gate?.exited;
  await upstream?.close();
  await redis?.remove();
  if (base?.dir) await rm(base.dir, { recursive: true, force: true });
});

const proof = (token: string, jti: string, nonce?: string): Promise<string> => dpopProof(client, token, { jti, htu: `${ORIGIN}/orders/42`, nonce });

describe('a broker that only revokes (docs/fleet.md)', () => {
  const broker = async (user: string, rules: readonly string[]) => {
    expect(await redis.command('ACL', 'SETUSER', user, 'on', '>broker-pw', 'resetkeys', '~jitgate:*', 'resetchannels', '-@all', ...rules)).toBe('OK');
    return runCli(['revoke', '--redis', `redis://${user}:broker-pw@127.0.0.1:${redis.port}/0`, '--jti', `acl-${user}`]);
  };

  it('jitgate revoke --redis works with +multi +exec +zadd +xadd +ping +zcard', async () => {
    const r = await broker('broker-ok', ['+multi', '+exec', '+zadd', '+xadd', '+ping', '+zcard']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(await redis.command('ZSCORE', 'jitgate:revocations', JSON.stringify({ jti: 'acl-broker-ok' }))).not.toBeNull();
  });

  it.each(['+ping', '+zcard'])('without %s it exits 1 naming the refused command (NOPERM), not "unreachable"', async (drop) => {
    const r = await broker(`broker-no-${drop.slice(1)}`, ['+multi', '+exec', '+zadd', '+xadd', '+ping', '+zcard'].filter((x) => x !== drop));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('NOPERM');
    expect(r.stderr).not.toContain('unreachable');
    // The refusals this provoked, so the gate's own ACL test below starts from an empty log.
    expect(await redis.command('ACL', 'LOG', 'RESET')).toBe('OK');
  });
});

describe('the Redis ACL docs/fleet.md documents', () => {
  it('is accepted by this redis-server, and a gate using every Redis feature runs with it', async () => {
    const password = randomBytes(16).toString('hex');
    await createUser('jitgate', password);
    gate = await spawnGate(await configFor('acl', 'jitgate', password));
    // Revocation through Redis.
    const revoked = await tokenNow(base.keys, { jti: 'acl-revoked' });
    const r = await fetch(`${gate.adminUrl}/revocations`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ jti: 'acl-revoked' }) });
    expect(r.status).toBe(201);
    const answer = await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${revoked}` } });
    expect([answer.status, JSON.parse(answer.text).reason]).toEqual([401, 'revoked']);
    // DPoP: the nonce (key read at start), then a proof accepted once and refused the second time.
    const bound = await tokenNow(base.keys, { jti: 'acl-bound', cnf: { jkt: await calculateJwkThumbprint(client.publicJwk, 'sha256') } });
    const asked = await send(gate.url, '/orders/42', { headers: { authorization: `DPoP ${bound}`, dpop: await proof(bound, 'acl-1') } });
    const nonce = asked.headers['dpop-nonce'] as string;
    expect(asked.status).toBe(401);
    const p = await proof(bound, 'acl-2', nonce);
    expect((await send(gate.url, '/orders/42', { headers: { authorization: `DPoP ${bound}`, dpop: p } })).status).toBe(200);
    const again = await send(gate.url, '/orders/42', { headers: { authorization: `DPoP ${bound}`, dpop: p } });
    expect([again.status, JSON.parse(again.text).reason]).toEqual([401, 'dpop_replay']);
    // Anomaly counting in Redis (MULTI of ZADD, ZREMRANGEBYSCORE, ZREMRANGEBYRANK, ZCARD, PEXPIRE; SET NX): two refusals revoke.
    const prober = await tokenNow(base.keys, { jti: 'acl-prober' });
    for (let i = 0; i < 2; i++) expect((await send(gate.url, '/admin', { headers: { authorization: `Bearer ${prober}` } })).status).toBe(403);
    const probed = Date.now();
    while ((await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${prober}` } })).status !== 401) {
      if (Date.now() - probed > 5000) throw new Error('the prober was not revoked: anomaly counting failed as this user');
      await new Promise((r) => setTimeout(r, 50));
    }
    // The follower's once-a-second log check (XINFO STREAM) and the sweep (XTRIM MINID, after its
    // ZREMRANGEBYSCORE) ran as this user, unrefused. Counted from here: XINFO also ran in the first load.
    const calls = async (): Promise<[number, number]> => {
      const stats = String(await redis.command('INFO', 'commandstats'));
      return [Number(/cmdstat_xinfo\|stream:calls=(\d+)/.exec(stats)?.[1] ?? 0), Number(/cmdstat_xtrim:calls=(\d+)/.exec(stats)?.[1] ?? 0)];
    };
    const [xinfo, xtrim] = await calls();
    const deadline = Date.now() + 5000;
    for (;;) {
      const [i, t] = await calls();
      if (i > xinfo && t > xtrim) break;
      if (Date.now() > deadline) throw new Error(`the gate did not run XINFO STREAM (${xinfo} → ${i}) and XTRIM (${xtrim} → ${t}) again`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await redis.command('ACL', 'LOG')).toEqual([]);
    expect((await fetch(`${gate.adminUrl}/readyz`)).status).toBe(200);
  });

  it.each(['+get', '+set'])('without %s (the DPoP nonce key at start) the gate stops at startup with NOPERM', async (drop) => {
    const user = `less${drop.slice(1)}`;
    const password = randomBytes(16).toString('hex');
    await createUser(user, password, drop);
    // No key yet, so the gate must write one (a fleet that has its key only reads it: fleet-nonces.test.ts).
    await redis.command('DEL', 'jitgate:dpop-nonce-key');
    const r = await runCli(['serve', '-c', await configFor(`acl-${user}`, user, password)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^jitgate serve: dpop\.use_nonce: could not set and read the fleet's DPoP nonce key jitgate:dpop-nonce-key in Redis \(NOPERM .*\); the Redis user needs \+set and \+get on it\n?$/);
  });

  it('without +zscan and +zrange (the revocation list) the gate starts but fails closed: not ready, 503 revocation_stale, NOPERM logged', async () => {
    const password = randomBytes(16).toString('hex');
    await createUser('lesszrange', password, '+zrange', '+zscan');
    const g = await spawnGate(await configFor('acl-lesszrange', 'lesszrange', password));
    try {
      const ready = await fetch(`${g.adminUrl}/readyz`);
      expect(ready.status).toBe(503);
      const answer = await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${await tokenNow(base.keys, { jti: 'acl-stale' })}` } });
      expect([answer.status, JSON.parse(answer.text).reason]).toEqual([503, 'revocation_stale']);
      expect(g.lines.some((l) => /NOPERM/.test(String(l.err)))).toBe(true);
    } finally {
      g.child.kill('SIGKILL');
      await g.exited;
    }
  });

  it('without +zscan (the ACL before it) the gate loads the set in one ZRANGE, says so, and enforces it', async () => {
    const password = randomBytes(16).toString('hex');
    await createUser('lesszscan', password, '+zscan');
    await redis.command('ZADD', 'jitgate:revocations', '+inf', '{"jti":"acl-loaded"}');
    const g = await spawnGate(await configFor('acl-lesszscan', 'lesszscan', password));
    try {
      expect((await fetch(`${g.adminUrl}/readyz`)).status).toBe(200);
      const answer = await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${await tokenNow(base.keys, { jti: 'acl-loaded' })}` } });
      expect([answer.status, JSON.parse(answer.text).reason]).toEqual([401, 'revoked']);
      expect(g.lines.some((l) => /may not ZSCAN/.test(String(l.msg)))).toBe(true);
    } finally {
      g.child.kill('SIGKILL');
      await g.exited;
    }
  });

  it('without +xrange and +xdel (the ACL before them) the sweep says NOPERM once and the gate works on', async () => {
    const password = randomBytes(16).toString('hex');
    await createUser('lessxdel', password, '+xrange', '+xdel');
    const g = await spawnGate(await configFor('acl-lessxdel', 'lessxdel', password));
    try {
      expect((await fetch(`${g.adminUrl}/readyz`)).status).toBe(200);
      const said = (): Record<string, any>[] => g.lines.filter((l) => l.op === 'sweep' && /NOPERM/.test(String(l.err)));
      const until = Date.now() + 10_000;
      while (said().length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(said()[0]!.err).toMatch(/xrange.*expired entries' log records now wait for the 30 s trim/);
      // Several sweeps later (one a second), still said once, and the gate still answers.
      await new Promise((r) => setTimeout(r, 2500));
      expect(said()).toHaveLength(1);
      // The shared command connection was not dropped for it (a re-probe: it was, and POSTs got 503 meanwhile).
      expect(g.lines.filter((l) => l.op === 'connect')).toEqual([]);
      expect(g.lines.filter((l) => l.msg === 'redis command connection ready')).toHaveLength(1);
      expect((await fetch(`${g.adminUrl}/readyz`)).status).toBe(200);
      expect((await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${await tokenNow(base.keys, { jti: 'acl-xdel' })}` } })).status).toBe(200);
    } finally {
      g.child.kill('SIGKILL');
      await g.exited;
    }
  });
});
