/**
 * RemoteIssuerKeys against a real JWKS server on loopback: loading, ETag, Cache-Control bounds,
 * the unknown-kid cooldown (counted at the server), refused documents keeping the old set,
 * staleness and recovery, and timers that stop.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { IssuerConfig } from '../../src/config/schema.ts';
import { FixedClock } from '../../src/core/clock.ts';
import { maxAgeMs } from '../../src/keys/jwks-fetch.ts';
import { RemoteIssuerKeys, type JwksRefreshInfo } from '../../src/keys/remote-issuer-keys.ts';
import { jwksOf, makeKey, type TestKey } from '../fixtures/keys.ts';
import { ISSUER_A, NOW } from '../fixtures/tokens.ts';
import { JwksServer, until } from './jwks-server.ts';

let k1: TestKey;
let k2: TestKey;
let hs: TestKey;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  [k1, k2] = await Promise.all([makeKey('ES256', 'k1'), makeKey('ES256', 'k2')]);
  hs = { ...k1, kid: 'rsa-only', publicJwk: { kty: 'RSA', kid: 'rsa-only', n: 'AQAB', e: 'AQAB' } };
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

function issuer(url: string, o: Partial<IssuerConfig> = {}): IssuerConfig {
  return {
    issuer: ISSUER_A,
    jwks_uri: url,
    jwks_refresh: 300_000,
    jwks_refresh_min: 30_000,
    jwks_max_stale: 3_600_000,
    jwks_kid_cooldown: 30_000,
    jwks_timeout: 1_000,
    jwks_max_bytes: 16 * 1024,
    algorithms: ['ES256'],
    max_ttl: 900_000,
    clock_tolerance: 5_000,
    ...o,
  } as IssuerConfig;
}

async function setup(o: Partial<IssuerConfig> = {}, clock?: FixedClock, random?: () => number) {
  const server = await new JwksServer().start();
  server.doc = jwksOf(k1);
  const infos: JwksRefreshInfo[] = [];
  const keys = new RemoteIssuerKeys(issuer(server.url, o), { clock, random, onRefresh: (i) => infos.push(i) });
  cleanup.push(() => server.stop(), () => keys.stop());
  /**
   * Resolves with the next refresh report matching `pred` (default: any). Reports of a fetch that
   * was already in flight when the test changed the server may still show the old state; `pred`
   * skips them.
   */
  const next = async (pred: (i: JwksRefreshInfo) => boolean = () => true): Promise<JwksRefreshInfo> => {
    const n = infos.length;
    const found = () => infos.slice(n).find(pred);
    await until(() => found() !== undefined, 5_000, 'a JWKS refresh');
    return found()!;
  };
  return { server, keys, infos, next };
}

describe('loading', () => {
  it('is loading until the first good set, then ready with the keys', async () => {
    const { keys, server } = await setup();
    expect(keys.state(Date.now())).toBe('loading');
    await keys.start();
    expect(keys.state(Date.now())).toBe('ready');
    expect(keys.size).toBe(1);
    expect(server.count(200)).toBe(1);
    expect(keys.resolve('k1', 'ES256')).toBeDefined(); // a hit is synchronous
  });

  it('stays loading when the first fetch fails, and loads by itself once the issuer answers', async () => {
    const { keys, server, infos } = await setup({ jwks_refresh: 100 });
    server.mode = 'error';
    await keys.start();
    expect(keys.state(Date.now())).toBe('loading');
    expect(infos[0]).toMatchObject({ cause: 'start', result: 'error' });
    expect(infos[0]!.nextInMs).toBeGreaterThanOrEqual(50);
    expect(infos[0]!.nextInMs).toBeLessThanOrEqual(100);
    server.mode = 'ok';
    await until(() => keys.state(Date.now()) === 'ready', 3_000, 'recovery');
  });
});

describe('refresh', () => {
  it('sends If-None-Match and keeps the same entries on 304', async () => {
    const { keys, server, next } = await setup({ jwks_refresh: 50, jwks_refresh_min: 10 });
    await keys.start();
    const entry = keys.resolve('k1', 'ES256');
    expect(await next()).toMatchObject({ cause: 'scheduled', result: 'not_modified' });
    expect(server.count(304)).toBeGreaterThanOrEqual(1);
    expect(server.count(200)).toBe(1);
    expect(keys.resolve('k1', 'ES256')).toBe(entry);
  });

  it('reuses the entry of an unchanged key and drops a removed one at once', async () => {
    const { keys, server, next } = await setup({ jwks_refresh: 50, jwks_refresh_min: 10 });
    await keys.start();
    const e1 = keys.resolve('k1', 'ES256') as never;
    server.doc = jwksOf(k1, k2);
    expect(await next((i) => i.result === 'ok')).toMatchObject({ result: 'ok', added: 1, removed: 0, keys: 2 });
    expect(keys.resolve('k1', 'ES256')).toBe(e1);
    expect(keys.has(e1)).toBe(true);
    server.doc = jwksOf(k2);
    expect(await next((i) => i.result === 'ok')).toMatchObject({ result: 'ok', added: 0, removed: 1, keys: 1 });
    expect(keys.has(e1)).toBe(false);
  });

  it('does not re-import a key when the set flaps (replicas serving different sets mid-rotation)', async () => {
    const { keys, server, next } = await setup({ jwks_refresh: 50, jwks_refresh_min: 10 });
    await keys.start();
    server.doc = jwksOf(k1, k2);
    await next((i) => i.result === 'ok');
    const e2 = keys.resolve('k2', 'ES256') as never;
    server.doc = jwksOf(k1);
    expect(await next((i) => i.result === 'ok')).toMatchObject({ result: 'ok', removed: 1 });
    expect(keys.has(e2)).toBe(false);
    server.doc = jwksOf(k1, k2);
    expect(await next((i) => i.result === 'ok')).toMatchObject({ result: 'ok', added: 1 });
    expect(keys.resolve('k2', 'ES256')).toBe(e2);
  });

  it('honours Cache-Control max-age within [jwks_refresh_min, jwks_refresh], and retries sooner after a failure', async () => {
    expect(maxAgeMs('public, max-age=60')).toBe(60_000);
    expect(maxAgeMs('max-age="7"')).toBe(7_000);
    expect(maxAgeMs('no-store')).toBe(0);
    expect(maxAgeMs('private')).toBeUndefined();
    expect(maxAgeMs(undefined)).toBeUndefined();
    const { keys, server, infos } = await setup();
    const cases: Array<[string | undefined, number]> = [
      ['max-age=60', 60_000],
      ['max-age=1', 30_000],
      ['max-age=86400', 300_000],
      [undefined, 300_000],
      ['no-cache', 30_000],
    ];
    for (const [cc, expected] of cases) {
      server.cacheControl = cc;
      server.doc = { keys: [{ ...k1.publicJwk, x5t: String(Math.random()) }] }; // new ETag each time
      keys.stop();
      await keys.start();
      expect(infos.at(-1)).toMatchObject({ result: 'ok', nextInMs: expected });
    }
    server.mode = 'error';
    // A failure retries after 50–100 % of min(jwks_refresh, 10 s), at random: gates that failed together
    // come back apart.
    const retries = new Set<number>();
    for (let i = 0; i < 20; i++) {
      keys.stop();
      await keys.start();
      expect(infos.at(-1)).toMatchObject({ result: 'error' });
      const next = infos.at(-1)!.nextInMs;
      expect(next).toBeGreaterThanOrEqual(5_000);
      expect(next).toBeLessThanOrEqual(10_000);
      retries.add(next);
    }
    expect(retries.size).toBeGreaterThan(10);
  });

  it('the retry jitter spans 50–100 % of the retry interval', async () => {
    for (const [r, expected] of [
      [0, 5_000],
      [0.5, 7_500],
      [0.999999, 10_000],
    ] as const) {
      const { keys, server, infos } = await setup({}, undefined, () => r);
      server.mode = 'error';
      await keys.start();
      keys.stop();
      expect(infos.at(-1)).toMatchObject({ result: 'error', nextInMs: expected });
    }
  });

  it('stop() clears the timer: no request after it', async () => {
    const { keys, server } = await setup({ jwks_refresh: 20, jwks_refresh_min: 10 });
    await keys.start();
    await until(() => server.requests >= 3, 2_000, 'background refreshes');
    keys.stop();
    const seen = server.requests;
    await new Promise((r) => setTimeout(r, 200));
    expect(server.requests).toBe(seen);
  });
});

describe('unknown kid', () => {
  it('coalesces a burst of 200 random kids into one fetch, then refuses refetches within the cooldown', async () => {
    const { keys, server } = await setup();
    await keys.start();
    const before = server.requests;
    const results = await Promise.all(Array.from({ length: 200 }, () => keys.resolve(`bogus-${Math.random()}`, 'ES256')));
    expect(results.every((r) => r === undefined)).toBe(true);
    expect(server.requests - before).toBe(1);
    expect(await keys.resolve('bogus-again', 'ES256')).toBeUndefined();
    expect(server.requests - before).toBe(1);
  });

  it('makes at most one fetch per cooldown under a sustained flood', async () => {
    const cooldown = 250;
    const { keys, server } = await setup({ jwks_kid_cooldown: cooldown });
    await keys.start();
    const before = server.requests;
    const started = performance.now();
    let asked = 0;
    while (performance.now() - started < 1_100) {
      await Promise.all(Array.from({ length: 20 }, () => keys.resolve(`flood-${asked++}`, 'ES256')));
      await new Promise((r) => setTimeout(r, 5));
    }
    const elapsed = performance.now() - started;
    const fetches = server.requests - before;
    console.log(`[unknown-kid flood] ${asked} bogus kids in ${Math.round(elapsed)}ms → ${fetches} JWKS fetches (cooldown ${cooldown}ms)`);
    expect(fetches).toBeGreaterThanOrEqual(2);
    expect(fetches).toBeLessThanOrEqual(Math.floor(elapsed / cooldown) + 1);
  });

  it('picks up a rotated-in key with one fetch shared by every waiting caller', async () => {
    const { keys, server } = await setup();
    await keys.start();
    server.doc = jwksOf(k1, k2);
    const before = server.requests;
    const found = await Promise.all(Array.from({ length: 50 }, () => keys.resolve('k2', 'ES256')));
    expect(found.every((e) => e !== undefined && e === found[0])).toBe(true);
    expect(server.requests - before).toBe(1);
  });

  it('does not refetch for a known kid with another alg, or for a token without kid', async () => {
    const { keys, server } = await setup();
    await keys.start();
    const before = server.requests;
    expect(keys.resolve('k1', 'ES384')).toBeUndefined();
    expect(keys.resolve(undefined, 'ES256')).toBeDefined();
    expect(server.requests).toBe(before);
  });
});

describe('refused documents keep the last good set', () => {
  const cases: Array<[string, (s: JwksServer) => void, string | undefined]> = [
    ['oversized (Content-Length)', (s) => (s.mode = 'oversized'), 'too_large'],
    ['oversized (chunked, no length)', (s) => (s.mode = 'oversized_chunked'), 'too_large'],
    ['malformed JSON', (s) => (s.mode = 'malformed'), 'malformed'],
    ['not a JWKS', (s) => (s.mode = 'not_a_jwks'), 'malformed'],
    ['slow (past jwks_timeout)', (s) => ((s.mode = 'slow'), (s.slowMs = 3_000)), 'timeout'],
    ['HTTP 503', (s) => (s.mode = 'error'), 'http_status'],
    ['no usable key', (s) => (s.doc = { keys: [hs.publicJwk] }), undefined],
  ];
  for (const [name, breakIt, code] of cases) {
    it(name, async () => {
      // A timeout short enough for the slow case, long enough for a loaded CI box on loopback.
      const { keys, server, next } = await setup({ jwks_refresh: 100, jwks_refresh_min: 10, jwks_timeout: 500 });
      await keys.start();
      const entry = keys.resolve('k1', 'ES256');
      breakIt(server);
      const info = await next((i) => i.result !== 'not_modified');
      expect(info.result).toBe('error');
      expect(info.keys).toBe(1);
      if (code !== undefined) expect((info.error as { code?: string }).code).toBe(code);
      else expect(info.error?.message).toMatch(/no usable key/);
      expect(keys.resolve('k1', 'ES256')).toBe(entry);
      expect(keys.state(Date.now())).toBe('ready');
    });
  }
});

describe('an empty key set is applied: the issuer withdrew every key (SPEC §6; a review)', () => {
  it('drops the keys at once instead of keeping them until jwks_max_stale', async () => {
    const { keys, server, next } = await setup({ jwks_refresh: 50, jwks_refresh_min: 10 });
    await keys.start();
    const e1 = keys.resolve('k1', 'ES256') as never;
    server.doc = { keys: [] };
    expect(await next((i) => i.result === 'ok')).toMatchObject({ result: 'ok', removed: 1, keys: 0 });
    expect(keys.has(e1)).toBe(false);
    expect(await keys.resolve('k1', 'ES256')).toBeUndefined(); // an unknown kid now: refetched, still none
    server.doc = jwksOf(k1); // published again: back
    await next((i) => i.result === 'ok' && i.keys === 1);
    expect(keys.resolve('k1', 'ES256')).toBeDefined();
  });
});

describe('staleness', () => {
  it('turns stale after jwks_max_stale without a successful fetch, and recovers by itself', async () => {
    const clock = new FixedClock(NOW * 1000);
    const { keys, server } = await setup({ jwks_refresh: 50, jwks_refresh_min: 10, jwks_max_stale: 60_000 }, clock);
    await keys.start();
    await server.stop();
    clock.advance(60_000);
    expect(keys.state(clock.nowMs())).toBe('ready');
    clock.advance(1);
    expect(keys.state(clock.nowMs())).toBe('stale');
    expect(keys.resolve('k1', 'ES256')).toBeDefined(); // the set is kept; the gate refuses on state
    await server.start();
    await until(() => keys.state(clock.nowMs()) === 'ready', 3_000, 'recovery');
  });
});
