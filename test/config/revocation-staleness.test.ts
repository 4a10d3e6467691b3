/**
 * `revocation.max_stale` against how often its sources sync (SPEC §5, §9): a value a healthy source
 * cannot keep is a start-up error naming the key, not a gate that answers 503 revocation_stale for
 * part of every interval. A black-box probe found `max_stale: 500ms` with Redis accepted, and half of
 * all requests then refused with Redis up.
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
