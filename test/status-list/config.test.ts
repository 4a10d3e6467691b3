/**
 * The `issuers[].status_list` block (SPEC §10) is validated at start like every key: errors name the
 * key and say what is wrong, and the documented defaults (docs/status-list.md) are the schema's.
 */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.ts';
import { statusListsConfig } from '../../src/status-list/list-cache.ts';

const base = (statusList: unknown) => ({
  upstream: { url: 'http://127.0.0.1:9' },
  service: { audience: 'orders' },
  issuers: [{ issuer: 'https://broker.internal', jwks_file: './jwks.json', status_list: statusList }],
});

function problems(statusList: unknown): string {
  try {
    validateConfig(base(statusList), 'jitgate.yaml');
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected a config error');
}

describe('issuers[].status_list', () => {
  it('defaults: refresh 1m, max_stale 5m, timeout 2s, max_bytes 4 MiB, max_list_bytes 16 MiB, max_lists 1000, required false', () => {
    const c = validateConfig(base({ allowed_uris: ['https://Broker.internal/status/'] }), 'jitgate.yaml');
    expect(c.issuers[0]!.status_list).toEqual({
      allowed_uris: ['https://Broker.internal/status/'],
      required: false,
      refresh: 60_000,
      max_stale: 300_000,
      timeout: 2_000,
      max_bytes: 4 * 1024 * 1024,
      max_list_bytes: 16 * 1024 * 1024,
      max_lists: 1000,
    });
    // Prefixes are compared in canonical form (lower-case host).
    expect(statusListsConfig({ ...c.issuers[0]!, status_list: c.issuers[0]!.status_list! }).allowedUris).toEqual(['https://broker.internal/status/']);
  });

  it.each([
    [{}, /issuers\[0\]\.status_list\.allowed_uris/],
    [{ allowed_uris: [] }, /issuers\[0\]\.status_list\.allowed_uris: name at least one URI prefix/],
    [{ allowed_uris: ['ftp://broker.internal/status/'] }, /issuers\[0\]\.status_list\.allowed_uris\[0\]: expected an http:\/\/ or https:\/\/ URL/],
    [{ allowed_uris: ['https://user:pw@broker.internal/status/'] }, /allowed_uris\[0\]: expected a URL prefix without user info or #fragment/],
    [{ allowed_uris: ['https://broker.internal/status/'], refresh: 'soon' }, /issuers\[0\]\.status_list\.refresh: expected a duration like "1m"/],
    [{ allowed_uris: ['https://broker.internal/status/'], max_list_bytes: 0 }, /issuers\[0\]\.status_list\.max_list_bytes/],
    [{ allowed_uris: ['https://broker.internal/status/'], max_list_bytes: 512 * 1024 * 1024 }, /max_list_bytes: at most 268435456/],
    [{ allowed_uris: ['https://broker.internal/status/'], cache: true }, /issuers\[0\]\.status_list/],
    // Values that validated once and made a fetch loop, a 503 on every first fetch, or a list stale most of the time.
    [{ allowed_uris: ['https://broker.internal/status/'], refresh: '0s' }, /issuers\[0\]\.status_list\.refresh: expected at least 1s/],
    [{ allowed_uris: ['https://broker.internal/status/'], refresh: '999ms' }, /issuers\[0\]\.status_list\.refresh: expected at least 1s/],
    [{ allowed_uris: ['https://broker.internal/status/'], timeout: '0s' }, /issuers\[0\]\.status_list\.timeout: expected at least 100ms/],
    [{ allowed_uris: ['https://broker.internal/status/'], timeout: '99ms' }, /issuers\[0\]\.status_list\.timeout: expected at least 100ms/],
    [{ allowed_uris: ['https://broker.internal/status/'], max_stale: '0s' }, /issuers\[0\]\.status_list\.max_stale: must be longer than refresh \+ timeout \(62s\)/],
    [{ allowed_uris: ['https://broker.internal/status/'], max_stale: '1s' }, /issuers\[0\]\.status_list\.max_stale: must be longer than refresh \+ timeout/],
    [{ allowed_uris: ['https://broker.internal/status/'], refresh: '10m' }, /issuers\[0\]\.status_list\.max_stale: must be longer than refresh \+ timeout \(602s\)/],
    [{ allowed_uris: ['https://broker.internal/status/'], refresh: '1m', timeout: '2s', max_stale: '62s' }, /status_list\.max_stale: must be longer/],
  ])('%j → a config error naming the key', (block, message) => {
    expect(problems(block)).toMatch(message);
  });

  it('accepts the smallest settings that keep a healthy list fresh: refresh 1s, timeout 100ms, max_stale 1101ms', () => {
    const c = validateConfig(base({ allowed_uris: ['https://broker.internal/status/'], refresh: '1s', timeout: '100ms', max_stale: '1101ms' }), 'jitgate.yaml');
    expect(c.issuers[0]!.status_list).toMatchObject({ refresh: 1_000, timeout: 100, max_stale: 1_101 });
  });
});
