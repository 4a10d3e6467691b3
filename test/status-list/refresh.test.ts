/**
 * Freshness of status lists (SPEC §10): background refresh picks up a change for tokens already
 * cached, with If-None-Match; a failing refresh keeps the last good list until max_stale, then its
 * tokens get 503 and /readyz names the list (the gate stays ready); recovery is automatic. A lagging copy (older iat) never
 * replaces a newer one, and a list's ttl shortens the refresh interval.
 * Lists are served by a real HTTP server; the refresh timers are real, max_stale is judged on the
 * gate's FixedClock.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeGate, makeTestKeys, type TestGate, type TestKeys } from '../fixtures/gate.ts';
import { NOW } from '../fixtures/tokens.ts';
import { decideToken, eventually, outcome, statusToken } from './helpers.ts';
import { cliList, StatusListServer } from './list-server.ts';

let keys: TestKeys;
let server: StatusListServer;
let t: TestGate;

beforeAll(async () => {
  keys = await makeTestKeys();
  server = await new StatusListServer().start();
  t = await makeGate(keys, (c) => {
    c.issuers[0].status_list = { allowed_uris: [server.uri('/status/')], refresh: '1s', max_stale: '10s', timeout: '1s' };
  });
});

afterAll(async () => {
  t.gate.stop();
  await Promise.all([server.stop(), rm(t.dir, { recursive: true, force: true })]);
});

const reasonNow = (token: string): string => {
  const d = decideToken(t.gate, token);
  if (d instanceof Promise) throw new Error('a cached token with a held list must be decided synchronously');
  return d.reason;
};

describe('refresh', () => {
  it('a revocation published after the token was cached is enforced on its next requests', async () => {
    const path = '/status/live';
    const uri = server.uri(path);
    server.lists.set(path, await cliList(keys.a, { uri, bits: 1, size: 1024, iat: NOW, statuses: new Map() }));
    const token = await statusToken(keys.a, uri, 9);
    expect(await outcome(t.gate, token)).toMatchObject({ reason: 'granted' });
    expect(reasonNow(token)).toBe('granted');

    // Unchanged list: conditional requests answered 304.
    await eventually(() => server.count(304) >= 2, 5_000, 'two 304 refreshes');
    expect(server.seen.filter((s) => s.path === path).slice(1).every((s) => s.ifNoneMatch !== undefined)).toBe(true);
    expect(reasonNow(token)).toBe('granted');

    server.lists.set(path, await cliList(keys.a, { uri, bits: 1, size: 1024, iat: NOW + 1, statuses: new Map([[9, 1]]) }));
    await eventually(() => reasonNow(token) === 'revoked', 5_000, 'the cached token to be refused');

    // Suspension lifted (2 bits now): the same cached token is allowed again.
    server.lists.set(path, await cliList(keys.a, { uri, bits: 2, size: 1024, iat: NOW + 2, statuses: new Map() }));
    await eventually(() => reasonNow(token) === 'granted', 5_000, 'the cached token to be allowed again');
  });

  it('a copy older than the held list (a lagging cache) never replaces it', async () => {
    const path = '/status/lagging';
    const uri = server.uri(path);
    server.lists.set(path, await cliList(keys.a, { uri, bits: 1, size: 64, iat: NOW, statuses: new Map([[4, 1]]) }));
    const token = await statusToken(keys.a, uri, 4);
    expect(await outcome(t.gate, token)).toMatchObject({ reason: 'revoked' });
    server.lists.set(path, await cliList(keys.a, { uri, bits: 1, size: 64, iat: NOW - 60, statuses: new Map() }));
    const seen = server.requestsFor(path);
    await eventually(() => server.requestsFor(path) >= seen + 3, 8_000, 'three refreshes of the older copy');
    expect(reasonNow(token)).toBe('revoked');
  });

  it('a failing refresh keeps the last good list; past max_stale → 503, /readyz names it but stays ready; recovery is automatic', async () => {
    const path = '/status/flaky';
    const uri = server.uri(path);
    server.lists.set(path, await cliList(keys.a, { uri, bits: 1, size: 64, iat: NOW, statuses: new Map([[1, 1]]) }));
    const good = await statusToken(keys.a, uri, 0);
    const revoked = await statusToken(keys.a, uri, 1);
    expect(await outcome(t.gate, good)).toMatchObject({ reason: 'granted' });
    expect(await outcome(t.gate, revoked)).toMatchObject({ reason: 'revoked' });

    server.modes.set(path, { kind: 'status', status: 500 });
    const errors = server.count(500);
    await eventually(() => server.count(500) >= errors + 2, 5_000, 'two failed refreshes');
    expect(reasonNow(good)).toBe('granted');
    expect(reasonNow(revoked)).toBe('revoked');
    expect(t.gate.readiness().ready).toBe(true);

    try {
      t.clock.advance(10_001);
      expect(reasonNow(good)).toBe('status_list_stale');
      expect(reasonNow(revoked)).toBe('status_list_stale');
      // Shown on /readyz with the last error, but the gate stays ready: only this list's tokens are refused.
      const r = t.gate.readiness();
      expect(r.ready).toBe(true);
      expect(r.problems).toContain(`status list ${uri} of issuer https://broker.internal has not been refreshed within max_stale (last error: status_list_unavailable: HTTP 500)`);

      server.modes.delete(path);
      await eventually(() => reasonNow(good) === 'granted', 5_000, 'recovery');
      expect(reasonNow(revoked)).toBe('revoked');
      expect(t.gate.readiness().problems.filter((p) => p.includes(uri))).toEqual([]);
    } finally {
      t.clock.set(NOW * 1000);
    }
  });

  it.each([
    ['without an ETag', undefined],
    ['with an empty ETag (a re-probe: sent back as an empty If-None-Match, it passed)', ''],
    ['with a blank ETag', '  '],
  ])('a held list that came %s: bare 304s confirm nothing, so past max_stale its tokens get 503 (a probe)', async (_name, etag) => {
    const path = `/status/no-etag-${etag?.length ?? 'none'}`;
    const uri = server.uri(path);
    server.modes.set(path, { kind: 'body', body: await cliList(keys.a, { uri, bits: 1, size: 64, iat: NOW, statuses: new Map() }), etag });
    const token = await statusToken(keys.a, uri, 0);
    expect(await outcome(t.gate, token)).toMatchObject({ reason: 'granted' });
    server.modes.set(path, { kind: 'status', status: 304 }); // whatever the request carried
    // Requests for this path from now on are answered 304. (Counting 304s over the whole server let the
    // wait below end on other held lists' genuine 304s before this one's was read: a stressed run.)
    const asked = server.requestsFor(path);
    try {
      t.clock.advance(10_001);
      expect(reasonNow(token)).toBe('status_list_stale'); // (and the entry is used: not dropped for disuse)
      // Refreshes answered 304 after the clock moved: before, each one stamped the list fresh again. A
      // list's refreshes go one at a time, so a second request means the first 304 was read.
      await eventually(() => server.requestsFor(path) >= asked + 2, 5_000, 'two 304 refreshes');
      expect(server.seen.filter((s) => s.path === path).every((s) => s.ifNoneMatch === undefined)).toBe(true); // plain GETs
      expect(reasonNow(token)).toBe('status_list_stale');
      expect(t.gate.readiness().problems).toContain(`status list ${uri} of issuer https://broker.internal has not been refreshed within max_stale (last error: status_list_unavailable: HTTP 304 to a request without If-None-Match)`);
    } finally {
      t.clock.set(NOW * 1000);
      server.modes.delete(path);
    }
  });

  /**
   * A gate (refresh 1h, its clock at NOW) whose one list carries `list` (its ttl or exp): the time from the
   * first fetch to the second, which only the list's own claims can bring forward.
   */
  async function secondFetchAfter(list: { ttlSeconds?: number; expSeconds?: number }): Promise<number> {
    const own = await new StatusListServer().start();
    const gate = await makeGate(keys, (c) => {
      c.issuers[0].clock_tolerance = '5s';
      c.issuers[0].status_list = { allowed_uris: [own.uri('/status/')], refresh: '1h', max_stale: '2h' };
    });
    try {
      const path = '/status/own';
      const uri = own.uri(path);
      own.lists.set(path, await cliList(keys.a, { uri, bits: 1, size: 8, iat: NOW, statuses: new Map(), ...list }));
      expect(await outcome(gate.gate, await statusToken(keys.a, uri, 0))).toMatchObject({ reason: 'granted' });
      const started = performance.now();
      await eventually(() => own.requestsFor(path) >= 2, 4_000, 'a second fetch');
      return performance.now() - started;
    } finally {
      gate.gate.stop();
      await Promise.all([own.stop(), rm(gate.dir, { recursive: true, force: true })]);
    }
  }

  it("the list's exp brings the refresh forward to a second before exp, not to exp + clock_tolerance", async () => {
    // exp in 3 s → fetched again ≈ 2 s later (before: exp + 5 s − 1 s = 7 s, past the 4 s wait).
    expect(await secondFetchAfter({ expSeconds: 3 })).toBeGreaterThan(1_500);
  });

  it("the list's ttl shortens the refresh interval", async () => {
    expect(await secondFetchAfter({ ttlSeconds: 1 })).toBeGreaterThan(800);
  });
});
