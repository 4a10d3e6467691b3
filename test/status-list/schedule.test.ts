/**
 * The runtime floor of list refreshes (SPEC §10, docs/status-list.md): whatever the settings, a list's
 * ttl or its exp say, one list is fetched at most once a second. Config validation refuses a refresh
 * under 1 s; this is the second line, for settings built in code and for lists whose ttl or exp ask
 * for more (a `refresh: 0s` once made ≈430 fetches a second of one list).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/core/clock.ts';
import type { IssuerKeys } from '../../src/keys/issuer-keys.ts';
import { FetchError } from '../../src/net/bounded-get.ts';
import { MIN_REFETCH_MS, StatusListEntry, type StatusListFetchInfo, type StatusListSettings } from '../../src/status-list/list-entry.ts';

const entries: StatusListEntry[] = [];
afterEach(() => {
  for (const e of entries.splice(0)) e.stop();
});

const settings = (over: Partial<StatusListSettings>): StatusListSettings => ({
  issuer: 'https://broker.internal',
  algorithms: new Set(['ES256']),
  toleranceSec: 5,
  refreshMs: 60_000,
  maxStaleMs: 300_000,
  timeoutMs: 1_000,
  maxBytes: 65_536,
  maxListBytes: 65_536,
  ...over,
});

describe('refresh floor', () => {
  it('refresh 0 with a failing publisher: at most one fetch a second, not a loop', async () => {
    let gets = 0;
    const infos: StatusListFetchInfo[] = [];
    const entry = new StatusListEntry('https://broker.internal/status/1', {
      settings: settings({ refreshMs: 0 }),
      // Never consulted: every fetch fails before a list is verified.
      keys: {} as IssuerKeys,
      clock: systemClock,
      get: async () => {
        gets++;
        throw new FetchError('http_status', 'HTTP 404', { httpStatus: 404 });
      },
      onFetch: (i) => infos.push(i),
    });
    entries.push(entry);
    expect(entry.status(0, systemClock.nowMs())).toBe('pending');
    await new Promise((r) => setTimeout(r, 1_500));
    // The first fetch and at most one retry a second later; without the floor this was hundreds.
    expect(gets).toBeGreaterThanOrEqual(1);
    expect(gets).toBeLessThanOrEqual(2);
    expect(infos[0]!.result).toBe('status_list_unavailable');
    expect(infos[0]!.nextInMs).toBeGreaterThan(MIN_REFETCH_MS - 100);
  });
});
