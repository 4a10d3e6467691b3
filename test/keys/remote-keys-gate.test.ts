/**
 * Remote keys through the production wiring (buildGate → Gate → decide) against real JWKS
 * servers on loopback: rotation under concurrent load with zero failed requests, an issuer that
 * goes down, never loads, or goes stale (503 keys_unavailable / keys_stale, readiness, logs,
 * metrics, recovery), an unknown-kid flood, refused documents, and issuers kept apart.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FixedClock } from '../../src/core/clock.ts';
import type { Decision } from '../../src/core/decision.ts';
import type { Gate } from '../../src/gate.ts';
import { buildTestGate, logged } from '../fixtures/built-gate.ts';
import { bearer, input } from '../fixtures/gate.ts';
import { jwksOf, makeKey, type TestKey } from '../fixtures/keys.ts';
import { ISSUER_A, ISSUER_B, NOW, sign } from '../fixtures/tokens.ts';
import { JwksServer, until } from './jwks-server.ts';

let k1: TestKey;
let k2: TestKey;
let kb: TestKey;
let stranger: TestKey;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  [k1, k2, kb, stranger] = await Promise.all([makeKey('ES256', 'k1'), makeKey('ES256', 'k2'), makeKey('ES256', 'kb'), makeKey('ES256', 'x')]);
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const reason = (d: Decision): string => `${d.kind}:${d.reason}`;
const get = (gate: Gate, token: string) => gate.decide(input('GET', '/orders/42', bearer(token)));

async function jwks(...keys: TestKey[]): Promise<JwksServer> {
  const s = await new JwksServer().start();
  s.doc = jwksOf(...keys);
  cleanup.push(() => s.stop());
  return s;
}

async function gateFor(servers: Array<[string, JwksServer, Record<string, unknown>?]>, clock = new FixedClock(NOW * 1000)) {
  const built = await buildTestGate(
    { issuers: servers.map(([iss, s, o]) => ({ issuer: iss, jwks_uri: s.url, algorithms: ['ES256'], jwks_refresh: '100ms', jwks_refresh_min: '20ms', jwks_timeout: '2s', ...o })) },
    clock,
  );
  cleanup.push(() => built.gate.stop());
  return { ...built, clock };
}

function tokens(key: TestKey, n: number, tag: string): Promise<string[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => sign(key, { jti: `${tag}-${i}` })));
}

/** Workers deciding in a loop over `pool()` until stopped; every non-allow is a failure. */
function load(gate: Gate, pool: () => readonly string[], workers = 16) {
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const done = Promise.all(
    Array.from({ length: workers }, async () => {
      while (!stop) {
        const list = pool();
        const d = await get(gate, list[Math.floor(Math.random() * list.length)]!);
        if (d.kind === 'allow') ok++;
        else failures.push(reason(d));
        await new Promise((r) => setImmediate(r)); // let timers and sockets run
      }
    }),
  );
  return {
    stats: () => ({ ok, failures }),
    async stop() {
      stop = true;
      await done;
      return { ok, failures };
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rotation', () => {
  it('accepts old and new keys while both are published, with zero failed requests under load, and drops the old key at once', async () => {
    const server = await jwks(k1);
    const { gate } = await gateFor([[ISSUER_A, server, { jwks_refresh: '250ms', jwks_kid_cooldown: '30s' }]]);
    expect(gate.readiness().ready).toBe(true);
    const old = await tokens(k1, 20, 'old');
    const fresh = await tokens(k2, 20, 'new');
    let pool: readonly string[] = old;
    const l = load(gate, () => pool);
    await sleep(200);
    // Issuer publishes k2 and starts signing with it at once: the first k2 tokens arrive before
    // any scheduled refresh, so the unknown-kid refetch (one, shared) must find the key.
    server.doc = jwksOf(k1, k2);
    pool = [...old, ...fresh];
    await sleep(600);
    // Old tokens have expired in real life; the issuer retires k1.
    pool = fresh;
    await sleep(50);
    server.doc = jwksOf(k2);
    await until(() => gate.issuerKeys[0]!.size === 1, 3_000, 'k1 removal');
    await sleep(200);
    const { ok, failures } = await l.stop();
    console.log(`[rotation] ${ok} allowed, ${failures.length} failed during add + remove of a key (${server.requests} JWKS requests)`);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(500);
    // A cached k1 token: the key left the set, so the cached verification no longer counts.
    expect(gate.cache.size).toBeGreaterThan(0);
    expect(reason(await get(gate, old[0]!))).toBe('deny:unknown_key');
    expect(reason(await get(gate, fresh[0]!))).toBe('allow:granted');
  });
});

describe('issuer trouble', () => {
  it('keeps serving from the cached set while the JWKS server is down, and logs the failures', async () => {
    const server = await jwks(k1);
    const { gate, logs, metrics } = await gateFor([[ISSUER_A, server]]);
    const cachedTok = await sign(k1, { jti: 'cached' });
    expect(reason(await get(gate, cachedTok))).toBe('allow:granted');
    await server.stop();
    await until(() => logged(logs, 'JWKS refresh failed; keeping the last good set').length >= 2, 3_000, 'failed refreshes');
    expect(reason(await get(gate, cachedTok))).toBe('allow:granted');
    expect(reason(await get(gate, await sign(k1, { jti: 'uncached' })))).toBe('allow:granted');
    expect(gate.readiness().ready).toBe(true);
    expect(await metrics.registry.getSingleMetricAsString('jitgate_jwks_refreshes_total')).toMatch(/result="error"} [1-9]/);
  });

  it('never loaded: 503 keys_unavailable and not ready, then ready by itself', async () => {
    const server = await jwks(k1);
    server.mode = 'error';
    const { gate, logs } = await gateFor([[ISSUER_A, server]]);
    const tok = await sign(k1);
    expect(reason(await get(gate, tok))).toBe('unavailable:keys_unavailable');
    expect(gate.readiness()).toEqual({ ready: false, problems: [`keys for issuer ${ISSUER_A} not loaded yet`] });
    expect(logged(logs, 'JWKS not loaded')[0]).toMatchObject({ level: 'error', code: 'http_status', result: 'error' });
    server.mode = 'ok';
    await until(() => gate.readiness().ready, 3_000, 'readiness');
    expect(reason(await get(gate, tok))).toBe('allow:granted');
  });

  it('stale past jwks_max_stale: 503 keys_stale everywhere for that issuer, then recovery', async () => {
    const server = await jwks(k1);
    const { gate, clock, logs } = await gateFor([[ISSUER_A, server, { jwks_max_stale: '1m' }]]);
    const cachedTok = await sign(k1, { jti: 'c' });
    expect(reason(await get(gate, cachedTok))).toBe('allow:granted');
    await server.stop();
    clock.advance(61_000);
    expect(reason(await get(gate, cachedTok))).toBe('unavailable:keys_stale');
    expect(reason(await get(gate, await sign(k1, { jti: 'n', iat: NOW + 60 })))).toBe('unavailable:keys_stale');
    expect(gate.readiness().problems).toEqual([`keys for issuer ${ISSUER_A} are stale (refresh failing past jwks_max_stale)`]);
    await until(() => logged(logs, 'JWKS stale past jwks_max_stale').length > 0, 3_000, 'stale log');
    await server.start();
    await until(() => gate.readiness().ready, 3_000, 'recovery');
    expect(reason(await get(gate, cachedTok))).toBe('allow:granted');
  });

  it('a flood of 200 tokens with random kids costs at most one JWKS fetch per cooldown', async () => {
    const server = await jwks(k1);
    const { gate } = await gateFor([[ISSUER_A, server, { jwks_refresh: '5m', jwks_kid_cooldown: '30s' }]]);
    const bogus = await Promise.all(Array.from({ length: 200 }, (_, i) => sign(stranger, { jti: `b${i}` }, { kid: `rnd-${Math.random()}` })));
    const before = server.requests;
    const ds = await Promise.all(bogus.map((t) => get(gate, t)));
    expect(new Set(ds.map(reason))).toEqual(new Set(['deny:unknown_key']));
    expect(server.requests - before).toBe(1);
    // The good key still works, without a fetch.
    expect(reason(await get(gate, await sign(k1)))).toBe('allow:granted');
    expect(server.requests - before).toBe(1);
  });

  it('an oversized, malformed or slow JWKS is refused and logged; the old set keeps verifying', async () => {
    const server = await jwks(k1);
    const { gate, logs } = await gateFor([[ISSUER_A, server, { jwks_max_bytes: 4096, jwks_timeout: '300ms' }]]);
    for (const mode of ['oversized', 'malformed', 'slow'] as const) {
      server.mode = mode;
      const n = logged(logs, 'keeping the last good set').length;
      await until(() => logged(logs, 'keeping the last good set').length > n, 3_000, `${mode} refresh`);
      expect(reason(await get(gate, await sign(k1, { jti: mode })))).toBe('allow:granted');
    }
    const codes = new Set(logged(logs, 'keeping the last good set').map((l) => l.code));
    expect(codes).toEqual(new Set(['too_large', 'malformed', 'timeout']));
  });

  it('keeps issuers apart: one issuer down does not touch another', async () => {
    const a = await jwks(k1);
    const b = await jwks(kb);
    b.mode = 'error';
    const { gate } = await gateFor([
      [ISSUER_A, a],
      [ISSUER_B, b],
    ]);
    expect(reason(await get(gate, await sign(k1)))).toBe('allow:granted');
    expect(reason(await get(gate, await sign(kb, { iss: ISSUER_B })))).toBe('unavailable:keys_unavailable');
    // B's key never verifies A's tokens, even once loaded.
    b.mode = 'ok';
    await until(() => gate.readiness().ready, 3_000, 'issuer B');
    expect(reason(await get(gate, await sign(kb, { iss: ISSUER_B })))).toBe('allow:granted');
    expect(reason(await get(gate, await sign(kb, { jti: 'cross' })))).toBe('deny:unknown_key');
  });
});
