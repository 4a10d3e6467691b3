/**
 * Every max_stale against how often its source syncs (SPEC §5, §6, §9): a value a healthy source
 * cannot keep is a start-up error naming the key, not a gate that answers 503 for part of every
 * interval. Black-box probes found `revocation.max_stale: 500ms` with Redis accepted (half of all
 * requests then refused with Redis up), and `jwks_max_stale: 1s` with a 5s refresh (7 of 8 refused).
 */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.ts';

const base = (c: Record<string, unknown>) => ({
  upstream: { url: 'http://127.0.0.1:9' },
  service: { audience: 'orders' },
  issuers: [{ issuer: 'https://broker.internal', jwks_file: './jwks.json' }],
  ...c,
});

function problems(c: Record<string, unknown>): string {
  try {
    validateConfig(base(c), 'jitgate.yaml');
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected a config error');
}

const redis = { url: 'redis://127.0.0.1:6379/0' };

describe('revocation.max_stale', () => {
  it.each([
    [{ revocation: { redis: true, max_stale: '500ms' }, redis }, /revocation\.max_stale: must be longer than the Redis follower's 1s read \+ redis\.command_timeout \(2s\)/],
    [{ revocation: { redis: true, max_stale: '2s' }, redis }, /revocation\.max_stale: must be longer than/],
    [{ revocation: { redis: true, max_stale: '5s' }, redis: { ...redis, command_timeout: '4s' } }, /revocation\.max_stale: .*\(5s\)/],
    [{ revocation: { url: 'https://broker.internal/revocations.jsonl', max_stale: '1s' } }, /revocation\.max_stale: must be longer than revocation\.poll_interval \+ revocation\.timeout \(4s\)/],
    [{ revocation: { url: 'https://broker.internal/revocations.jsonl', poll_interval: '10s', max_stale: '11s' } }, /revocation\.max_stale: .*\(12s\)/],
  ])('%j → a config error naming the key and the bound', (c, message) => {
    expect(problems(c)).toMatch(message);
  });

  it('accepts the defaults and the smallest values a healthy source keeps fresh', () => {
    expect(validateConfig(base({ revocation: { redis: true }, redis }), 'jitgate.yaml').revocation.max_stale).toBe(30_000);
    expect(validateConfig(base({ revocation: { redis: true, max_stale: '2001ms' }, redis }), 'jitgate.yaml').revocation.max_stale).toBe(2_001);
    expect(validateConfig(base({ revocation: { url: 'https://broker.internal/r.jsonl', poll_interval: '100ms', timeout: '150ms', max_stale: '300ms' } }), 'jitgate.yaml').revocation.max_stale).toBe(300);
    // A file or a journal is stamped on change, not polled against max_stale: no bound.
    expect(validateConfig(base({ revocation: { file: './revoked.jsonl', max_stale: '1s' } }), 'jitgate.yaml').revocation.max_stale).toBe(1_000);
  });
});

describe('issuers[].jwks_max_stale', () => {
  const issuer = (o: Record<string, unknown>) => ({ issuers: [{ issuer: 'https://broker.internal', jwks_uri: 'https://broker.internal/jwks.json', ...o }] });

  it.each([
    [{ jwks_max_stale: '1s', jwks_refresh: '5s', jwks_refresh_min: '5s' }, /issuers\[0\]\.jwks_max_stale: must be longer than jwks_refresh \+ jwks_timeout \(10s\)/],
    [{ jwks_refresh: '1h' }, /issuers\[0\]\.jwks_max_stale: .*\(3605s\)/],
  ])('%j → a config error naming the key and the bound', (o, message) => {
    expect(problems(issuer(o))).toMatch(message);
  });

  it('accepts the defaults (refresh 5m, max_stale 1h), and a local jwks_file has no bound', () => {
    expect(validateConfig(base(issuer({})), 'jitgate.yaml').issuers[0]!.jwks_max_stale).toBe(3_600_000);
    const local = { issuers: [{ issuer: 'https://broker.internal', jwks_file: './jwks.json', jwks_max_stale: '1s' }] };
    expect(validateConfig(base(local), 'jitgate.yaml').issuers[0]!.jwks_max_stale).toBe(1_000);
  });
});

describe('floors against fetch loops', () => {
  it.each([
    [{ issuers: [{ issuer: 'https://broker.internal', jwks_uri: 'https://broker.internal/jwks.json', jwks_refresh: '0s' }] }, /issuers\[0\]\.jwks_refresh: expected at least 10ms/],
    [{ issuers: [{ issuer: 'https://broker.internal', jwks_uri: 'https://broker.internal/jwks.json', jwks_refresh_min: '0s' }] }, /issuers\[0\]\.jwks_refresh_min: expected at least 10ms/],
    [{ issuers: [{ issuer: 'https://broker.internal', jwks_uri: 'https://broker.internal/jwks.json', jwks_kid_cooldown: '0s' }] }, /issuers\[0\]\.jwks_kid_cooldown: expected at least 100ms/],
    [{ revocation: { url: 'https://broker.internal/r.jsonl', poll_interval: '1ms' } }, /revocation\.poll_interval: expected at least 10ms/],
  ])('%j → a config error naming the key', (c, message) => {
    expect(problems(c)).toMatch(message);
  });
});

describe('timeouts that node:http or undici would take 0 to mean "never" (a probe: keep_alive_timeout 0s kept idle connections open for good)', () => {
  it.each([
    ['limits', 'keep_alive_timeout'],
    ['limits', 'headers_timeout'],
    ['limits', 'request_timeout'],
    ['limits', 'body_timeout'],
    ['upstream', 'connect_timeout'],
    ['upstream', 'headers_timeout'],
    ['upstream', 'body_timeout'],
    // undici refuses 0 for a pool's idle time: every request was a 502 (a re-probe, 2026-12-07).
    ['upstream', 'keep_alive_timeout'],
  ])('%s.%s: 0s → a config error naming the key; 1ms is accepted', (section, key) => {
    // request_timeout must also be at least headers_timeout (test/config/limits.test.ts).
    const at = (v: string) => (section === 'limits' ? { limits: { [key]: v, ...(key === 'request_timeout' ? { headers_timeout: '1ms' } : {}) } } : { upstream: { url: 'http://127.0.0.1:8081', [key]: v } });
    expect(problems(at('0s'))).toContain(`${section}.${key}: must be more than 0 (0 would turn this timeout off)`);
    expect(() => validateConfig(base(at('1ms')), 'jitgate.yaml')).not.toThrow();
  });
});

describe('durations that set a timer: at most 24 days (node fires a longer timer after 1 ms; a review found a 30d refresh fetching a list hundreds of times a second)', () => {
  const sl = (o: Record<string, string>) => ({ issuers: [{ issuer: 'https://broker.internal', jwks_file: './jwks.json', status_list: { allowed_uris: ['https://lists.internal/'], ...o } }] });
  it.each([
    [sl({ refresh: '30d', max_stale: '61d' }), /issuers\[0\]\.status_list\.refresh: expected at most 24d/],
    [sl({ timeout: '25d', max_stale: '60d' }), /issuers\[0\]\.status_list\.timeout: expected at most 24d/],
    [{ issuers: [{ issuer: 'https://broker.internal', jwks_uri: 'https://broker.internal/jwks', jwks_refresh: '25d' }] }, /jwks_refresh: expected at most 24d/],
    [{ revocation: { url: 'https://broker.internal/r.jsonl', poll_interval: '30d', max_stale: '31d' } }, /revocation\.poll_interval: expected at most 24d/],
    [{ listen: { host: '127.0.0.1', port: 0, tls: { cert_file: 'c', key_file: 'k', reload_interval: '30d' } } }, /reload_interval: expected a duration like "1s" \(at least 10ms, at most 24d\)/],
  ])('%j → a config error naming the key', (c, message) => {
    expect(problems(c)).toMatch(message);
  });

  it('keeps durations that are only compared uncapped, and 24d itself', () => {
    const c = validateConfig(base({ issuers: [{ issuer: 'https://broker.internal', jwks_file: './jwks.json', max_ttl: '90d', jwks_refresh: '24d' }] }), 'jitgate.yaml');
    expect(c.issuers[0]!.max_ttl).toBe(90 * 86_400_000);
    expect(c.issuers[0]!.jwks_refresh).toBe(24 * 86_400_000);
  });
});
