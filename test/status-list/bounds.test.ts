/**
 * Bounds on status lists (SPEC §10, docs/status-list.md "Bounds"). Validly signed tokens naming many
 * distinct list URIs once grew the cache for the life of the process, retried every failing list every
 * 5 s on its own, opened a socket per list to one origin and made /readyz megabytes long (a reviewer:
 * 11,726 URIs → 27k sockets, 1.3 GB, 8.5 s event-loop lag). Here:
 * - at most `max_lists` lists per issuer; a new URI evicts only a list idle for `refresh`, else its
 *   tokens get 503 status_list_capacity (nothing fetched), and a held list in use keeps answering;
 * - a list dropped for disuse leaves the map;
 * - one origin never sees more than STATUS_LIST_FETCHES_PER_ORIGIN fetches at once (a fetch waiting for
 *   a slot longer than `timeout` fails as status_list_timeout);
 * - a failing list backs off from 5 s to min(refresh, 1 min);
 * - /readyz names at most MAX_PROBLEMS_LISTED unusable lists per issuer.
 */
import { rm } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { gaugeRefresher } from '../../src/admin/health.ts';
import { systemClock } from '../../src/core/clock.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { MAX_PROBLEMS_LISTED, STATUS_LIST_FETCHES_PER_ORIGIN } from '../../src/status-list/list-cache.ts';
import { OriginSlots } from '../../src/status-list/origin-slots.ts';
import type { StatusListEntry } from '../../src/status-list/list-entry.ts';
import { makeGate, makeTestKeys, type TestGate, type TestKeys } from '../fixtures/gate.ts';
import { NOW } from '../fixtures/tokens.ts';
import { decideToken, eventually, failingEntry, outcome, statusToken } from './helpers.ts';
import { cliList, StatusListServer } from './list-server.ts';

let keys: TestKeys;
let server: StatusListServer;
const gates: TestGate[] = [];

beforeAll(async () => {
  keys = await makeTestKeys();
  server = await new StatusListServer().start();
});

afterAll(async () => {
  for (const g of gates) g.gate.stop();
  await Promise.all([server.stop(), ...gates.map((g) => rm(g.dir, { recursive: true, force: true }))]);
});

async function gateWith(block: Record<string, unknown>): Promise<TestGate> {
  const g = await makeGate(keys, (c) => {
    c.issuers[0].status_list = { allowed_uris: [server.uri('/status/')], ...block };
  });
  gates.push(g);
  return g;
}

async function publish(path: string): Promise<string> {
  const uri = server.uri(path);
  server.lists.set(path, await cliList(keys.a, { uri, bits: 1, size: 64, iat: NOW, statuses: new Map([[1, 1]]) }));
  return uri;
}

/** The reason of a decision that must not wait: a cached token whose list is held (or refused at once). */
function reasonNow(t: TestGate, token: string): string {
  const d = decideToken(t.gate, token);
  if (d instanceof Promise) throw new Error('expected a synchronous decision');
  return d.reason;
}

describe('max_lists', () => {
  it('beyond the cap: the map stays at max_lists, a new URI gets 503 status_list_capacity unfetched, held lists in use keep answering', async () => {
    const t = await gateWith({ max_lists: 3, refresh: '1m', max_stale: '5m', timeout: '1s' });
    const lists = t.gate.statusLists[0]!;
    const held = await Promise.all(['/status/cap-0', '/status/cap-1', '/status/cap-2'].map(publish));
    const tokens = await Promise.all(held.map((uri) => statusToken(keys.a, uri, 0)));
    for (const token of tokens) expect(await outcome(t.gate, token)).toMatchObject({ reason: 'granted' });
    const revoked = await statusToken(keys.a, held[0]!, 1);
    expect(await outcome(t.gate, revoked)).toMatchObject({ reason: 'revoked' });

    // 50 more URIs, all published: every list held was used just now, so none is evicted for them.
    const before = server.seen.length;
    for (let i = 0; i < 50; i++) {
      const uri = await publish(`/status/flood-${i}`);
      expect(await outcome(t.gate, await statusToken(keys.a, uri, 0))).toEqual({ kind: 'unavailable', reason: 'status_list_capacity', status: 503 });
    }
    expect(server.seen.length).toBe(before);
    expect([...lists.entries()].length).toBe(3);
    // The legitimate tokens are answered from their held lists, at once.
    for (const token of tokens) expect(reasonNow(t, token)).toBe('granted');
    expect(reasonNow(t, revoked)).toBe('revoked');
  });

  it('a list idle for refresh makes room: the waiting token gets its list, an evicted list is fetched again for its cached token', async () => {
    const t = await gateWith({ max_lists: 2, refresh: '1m', max_stale: '5m', timeout: '1s' });
    const lists = t.gate.statusLists[0]!;
    const [a, b, c] = await Promise.all(['/status/lru-a', '/status/lru-b', '/status/lru-c'].map(publish));
    const [ta, tb, tc] = await Promise.all([a, b, c].map((uri) => statusToken(keys.a, uri!, 0)));
    try {
      expect(await outcome(t.gate, ta!)).toMatchObject({ reason: 'granted' });
      expect(await outcome(t.gate, tb!)).toMatchObject({ reason: 'granted' });
      // The token naming c is verified and cached while there is no room.
      expect(await outcome(t.gate, tc!)).toMatchObject({ reason: 'status_list_capacity' });

      // A minute later a is still in use, b is not: c takes b's place.
      t.clock.advance(60_000);
      expect(reasonNow(t, ta!)).toBe('granted');
      expect(await outcome(t.gate, tc!)).toMatchObject({ reason: 'granted' });
      expect([...lists.entries()].map((e) => e.uri).sort()).toEqual([a, c].sort());
      expect(server.requestsFor('/status/lru-c')).toBe(1);

      // b's cached token finds its entry retired: nothing while a and c are in use …
      expect(await outcome(t.gate, tb!)).toMatchObject({ reason: 'status_list_capacity' });
      expect(server.requestsFor('/status/lru-b')).toBe(1);
      // … and its list fetched again (waiting at most timeout) once c falls idle.
      t.clock.advance(60_000);
      expect(reasonNow(t, ta!)).toBe('granted');
      expect(await outcome(t.gate, tb!)).toMatchObject({ reason: 'granted' });
      expect(server.requestsFor('/status/lru-b')).toBe(2);
      expect([...lists.entries()].map((e) => e.uri).sort()).toEqual([a, b].sort());
    } finally {
      t.clock.set(NOW * 1000);
    }
  });

  it('the age gauge of an evicted list is removed at the next scrape', async () => {
    const t = await gateWith({ max_lists: 1, refresh: '1m', max_stale: '5m', timeout: '1s' });
    const metrics = new Metrics({ defaultMetrics: false });
    const scrape = gaugeRefresher(t.gate, metrics);
    const [a, b] = await Promise.all(['/status/gauge-a', '/status/gauge-b'].map(publish));
    const ages = async (): Promise<string[]> => (await metrics.statusListAge.get()).values.map((v) => String(v.labels.uri));
    try {
      expect(await outcome(t.gate, await statusToken(keys.a, a!, 0))).toMatchObject({ reason: 'granted' });
      scrape(false);
      expect(await ages()).toEqual([a]);
      t.clock.advance(60_000);
      expect(await outcome(t.gate, await statusToken(keys.a, b!, 0))).toMatchObject({ reason: 'granted' });
      scrape(false);
      expect(await ages()).toEqual([b]);
    } finally {
      t.clock.set(NOW * 1000);
    }
  });

  it('a list dropped for disuse leaves the map', async () => {
    const t = await gateWith({ refresh: '1s', max_stale: '2s', timeout: '400ms' });
    const lists = t.gate.statusLists[0]!;
    const uri = await publish('/status/idle');
    const token = await statusToken(keys.a, uri, 0);
    expect(await outcome(t.gate, token)).toMatchObject({ reason: 'granted' });
    expect([...lists.entries()].map((e) => e.uri)).toEqual([uri]);
    try {
      t.clock.advance(10_001); // max(max_stale, 10 × refresh) without a use; the next refresh drops it
      await eventually(() => [...lists.entries()].length === 0, 5_000, 'the idle list to leave the map');
      // Its cached token starts over, through a new entry.
      const before = server.requestsFor('/status/idle');
      expect(await outcome(t.gate, token)).toMatchObject({ reason: 'granted' });
      expect(server.requestsFor('/status/idle')).toBe(before + 1);
      expect([...lists.entries()].map((e) => e.uri)).toEqual([uri]);
    } finally {
      t.clock.set(NOW * 1000);
    }
  });
});

describe('a failing origin', () => {
  const n = 40;
  let t: TestGate;

  it(`never has more than ${STATUS_LIST_FETCHES_PER_ORIGIN} fetches in flight`, async () => {
    t = await gateWith({ refresh: '1m', max_stale: '5m', timeout: '3s' });
    const paths = Array.from({ length: n }, (_, i) => `/status/down-${i}`);
    // Each answer takes 200 ms and is a 404: 40 lists at 8 at a time take 1 s, within timeout.
    for (const p of paths) server.modes.set(p, { kind: 'slow', ms: 200 });
    server.maxInflight = 0;
    const tokens = await Promise.all(paths.map((p) => statusToken(keys.a, server.uri(p), 0)));
    const outcomes = await Promise.all(tokens.map((token) => outcome(t.gate, token)));
    for (const o of outcomes) expect(o).toEqual({ kind: 'unavailable', reason: 'status_list_unavailable', status: 503 });
    expect(paths.every((p) => server.requestsFor(p) === 1)).toBe(true);
    expect(server.maxInflight).toBeGreaterThan(1);
    expect(server.maxInflight).toBeLessThanOrEqual(STATUS_LIST_FETCHES_PER_ORIGIN);
  });

  it(`/readyz names the ${MAX_PROBLEMS_LISTED} most recently used of them and counts the rest`, () => {
    const r = t.gate.readiness();
    const listed = r.problems.filter((p) => p.startsWith('status list '));
    expect(listed).toHaveLength(MAX_PROBLEMS_LISTED);
    expect(r.problems).toContain(`and ${n - MAX_PROBLEMS_LISTED} more status lists of issuer https://broker.internal are unusable (${MAX_PROBLEMS_LISTED} most recently used shown)`);
    expect(r.ready).toBe(true);
  });
});

describe('a fetch waiting for a slot', () => {
  it('counts the wait in its timeout: a queue behind a hanging origin fails as status_list_timeout, and the rest is never sent', async () => {
    const t = await gateWith({ refresh: '1m', max_stale: '5m', timeout: '1s' });
    const paths = Array.from({ length: 24 }, (_, i) => `/status/hang-${i}`);
    // 600 ms an answer, 8 at a time: a third wave would start after every fetch's 1 s is over.
    for (const p of paths) server.modes.set(p, { kind: 'slow', ms: 600 });
    server.maxInflight = 0;
    const tokens = await Promise.all(paths.map((p) => statusToken(keys.a, server.uri(p), 0)));
    const started = performance.now();
    const outcomes = await Promise.all(tokens.map((token) => outcome(t.gate, token)));
    // Every request waited at most its timeout (plus scheduling on a busy machine), not its place in the queue.
    expect(performance.now() - started).toBeLessThan(2_500);
    expect(new Set(outcomes.map((o) => o.reason))).toContain('status_list_timeout');
    for (const o of outcomes) expect(['status_list_unavailable', 'status_list_timeout']).toContain(o.reason);
    expect(server.maxInflight).toBeLessThanOrEqual(STATUS_LIST_FETCHES_PER_ORIGIN);
    expect(paths.reduce((n, p) => n + server.requestsFor(p), 0)).toBeLessThanOrEqual(2 * STATUS_LIST_FETCHES_PER_ORIGIN);
  });
});

describe('OriginSlots', () => {
  it('runs at most limit tasks per origin, in order; a failure frees its slot; origins are independent', async () => {
    const slots = new OriginSlots(2);
    const release: (() => void)[] = [];
    const started: number[] = [];
    const task = (i: number, fail = false) => () =>
      new Promise<number>((resolve, reject) => {
        started.push(i);
        release[i] = () => (fail ? reject(new Error(`task ${i}`)) : resolve(i));
      });
    const runs = [0, 1, 2, 3, 4].map((i) => slots.run('http://a', task(i, i === 1)));
    const other = slots.run('http://b', task(5));
    await new Promise((r) => setTimeout(r, 0));
    expect(started).toEqual([0, 1, 5]);
    expect(slots.active('http://a')).toBe(2);
    release[1]!();
    await expect(runs[1]).rejects.toThrow('task 1');
    await new Promise((r) => setTimeout(r, 0));
    expect(started).toEqual([0, 1, 5, 2]);
    for (const i of [0, 2, 3, 4, 5]) {
      await new Promise((r) => setTimeout(r, 0));
      release[i]!();
    }
    expect(await Promise.all([runs[0], runs[2], runs[3], runs[4], other])).toEqual([0, 2, 3, 4, 5]);
    expect(started).toEqual([0, 1, 5, 2, 3, 4]);
    expect(slots.active('http://a')).toBe(0);
  });
});

describe('retry backoff', () => {
  const entries: StatusListEntry[] = [];
  afterEach(() => {
    for (const e of entries.splice(0)) e.stop();
    vi.useRealTimers();
  });

  it.each([
    [600_000, [5_000, 10_000, 20_000, 40_000, 60_000, 60_000]],
    [15_000, [5_000, 10_000, 15_000, 15_000]],
  ])('refresh %i ms: a list that keeps failing is retried after %o ms', async (refreshMs, expected) => {
    vi.useFakeTimers();
    const f = failingEntry('https://broker.internal/status/down', { issuer: 'https://broker.internal', algorithms: new Set(['ES256']), toleranceSec: 5, refreshMs, maxStaleMs: 2 * refreshMs, timeoutMs: 1_000, maxBytes: 65_536, maxListBytes: 65_536 });
    const { entry, infos } = f;
    entries.push(entry);
    expect(entry.status(0, systemClock.nowMs())).toBe('pending');
    await vi.advanceTimersByTimeAsync(0);
    for (const delay of expected.slice(0, -1)) {
      // Not a moment before the planned delay …
      const count = f.gets;
      await vi.advanceTimersByTimeAsync(delay - 1);
      expect(f.gets).toBe(count);
      await vi.advanceTimersByTimeAsync(1);
      // … then exactly one more attempt.
      expect(f.gets).toBe(count + 1);
    }
    expect(infos.map((i) => i.nextInMs)).toEqual(expected);
    expect(infos.every((i) => i.result === 'status_list_unavailable')).toBe(true);
  });
});
