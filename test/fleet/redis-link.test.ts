/**
 * RedisLink against a real redis-server (SPEC §9): a connection Redis closes while the gate sends
 * nothing on it (CLIENT KILL, an idle `timeout`, a restart) is noticed from the close itself, reported
 * through onState, and replaced, so the next command after an idle spell finds a working connection; a path that
 * silently stops carrying bytes is found by the idle heartbeat.
 */
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisLink } from '../../src/fleet/redis-link.ts';
import { startRedis, startRelay, type RedisServer } from '../fixtures/redis.ts';

let redis: RedisServer;
const links: RedisLink[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const l of links) l.stop();
  await redis?.remove();
});

async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const started = Date.now();
  while (!ok()) {
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function idleLink(name: string): Promise<{ link: RedisLink; states: boolean[] }> {
  const states: boolean[] = [];
  const link = new RedisLink({ url: redis.url, connectTimeoutMs: 2000, commandTimeoutMs: 1000, name, onState: (c) => states.push(c) });
  links.push(link);
  await link.connect();
  return { link, states };
}

describe('RedisLink', () => {
  it('a connection Redis kills while idle is reported lost at once and replaced, with no command sent on it', async () => {
    const { link, states } = await idleLink('jitgate-link-kill');
    const first = link.client;
    await redis.command('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    await until('loss reported', () => states.includes(false));
    await until('reconnected', () => link.client !== undefined && link.client !== first);
    expect(states).toEqual([true, false, true]);
    expect(await link.run('ping', (c) => c.ping())).toBe('PONG');
  });

  it('a connection closed by Redis\'s idle timeout is replaced before the next command', async () => {
    const { link, states } = await idleLink('jitgate-link-timeout');
    await redis.command('CONFIG', 'SET', 'timeout', '1');
    try {
      // Redis checks idle clients about once a second (hz 10, a slice per tick).
      await until('idle close reported', () => states.includes(false), 5000);
    } finally {
      await redis.command('CONFIG', 'SET', 'timeout', '0');
    }
    await until('reconnected', () => link.client !== undefined);
    expect(await link.run('ping', (c) => c.ping())).toBe('PONG');
  }, 10_000);

  it('an idle connection whose path stops answering (replies held back) is found by the heartbeat and reported lost; it comes back with the path', async () => {
    const relay = await startRelay(redis.port);
    try {
      const states: boolean[] = [];
      const link = new RedisLink({ url: relay.url, connectTimeoutMs: 500, commandTimeoutMs: 300, heartbeatMs: 200, name: 'jitgate-link-silent', onState: (c) => states.push(c) });
      links.push(link);
      await link.connect();
      // Held for longer than the test waits: to the link, a path that went silent with the socket open.
      relay.slow(4_000);
      await until('silent path reported', () => states.includes(false), 2_000);
      expect(link.client).toBeUndefined();
      relay.slow(0);
      await until('reconnected', () => link.client !== undefined, 8_000);
      expect(await link.run('ping', (c) => c.ping())).toBe('PONG');
    } finally {
      await relay.close();
    }
  }, 15_000);

  it('Redis unreachable at start: connect() returns the error and keeps trying; once stopped, an attempt still under way reports nothing', async () => {
    // Accepts and never answers: every attempt lasts its whole deadline (connect_timeout + 500 ms).
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    const states: Array<[boolean, string | undefined]> = [];
    const link = new RedisLink({ url: `redis://127.0.0.1:${port}/0`, connectTimeoutMs: 200, commandTimeoutMs: 300, name: 'jitgate-link-down', onState: (c, err) => states.push([c, err?.message]) });
    links.push(link);
    try {
      const err = await link.connect();
      expect(err?.message).toMatch(/^redis\.url redis:\/\/127\.0\.0\.1:\d+\/0: Redis unreachable within redis\.connect_timeout/);
      expect(link.client).toBeUndefined();
      expect(states).toEqual([[false, err!.message]]);
      // The first background attempt starts after 50–100 ms and lasts 700 ms: stopped in the middle of it.
      await new Promise((r) => setTimeout(r, 300));
      link.stop();
      const reported = states.length;
      await new Promise((r) => setTimeout(r, 1200));
      expect(states.length).toBe(reported);
    } finally {
      silent.close();
    }
  }, 15_000);

  it('stopped during its start-up attempts (the gate\'s start failed elsewhere): connect() returns at once after the attempt under way, reports nothing, retries nothing', async () => {
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    const states: boolean[] = [];
    const link = new RedisLink({ url: `redis://127.0.0.1:${port}/0`, connectTimeoutMs: 200, commandTimeoutMs: 300, name: 'jitgate-link-stopped', onState: (c) => states.push(c) });
    links.push(link);
    try {
      const started = Date.now();
      const connecting = link.connect();
      await new Promise((r) => setTimeout(r, 100));
      link.stop();
      await connecting;
      // One attempt lasts 700 ms (connect_timeout + 500); all three with their pauses, about 2.4 s.
      expect(Date.now() - started).toBeLessThan(1500);
      await new Promise((r) => setTimeout(r, 1000));
      expect(states).toEqual([]);
      expect(link.client).toBeUndefined();
    } finally {
      silent.close();
    }
  }, 15_000);
});
