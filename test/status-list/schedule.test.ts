/**
 * The runtime floor of list refreshes (SPEC §10, docs/status-list.md): whatever the settings, a list's
 * ttl or its exp say, one list is fetched at most once a second. Config validation refuses a refresh
 * under 1 s; this is the second line, for settings built in code and for lists whose ttl or exp ask
 * for more (a `refresh: 0s` once made ≈430 fetches a second of one list).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/core/clock.ts';
import { MIN_REFETCH_MS, type StatusListEntry, type StatusListSettings } from '../../src/status-list/list-entry.ts';
import { failingEntry } from './helpers.ts';

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
    const f = failingEntry('https://broker.internal/status/1', settings({ refreshMs: 0 }));
    const { entry, infos } = f;
    entries.push(entry);
    expect(entry.status(0, systemClock.nowMs())).toBe('pending');
    await new Promise((r) => setTimeout(r, 1_500));
    // The first fetch and at most one retry a second later; without the floor this was hundreds.
    expect(f.gets).toBeGreaterThanOrEqual(1);
    expect(f.gets).toBeLessThanOrEqual(2);
    expect(infos[0]!.result).toBe('status_list_unavailable');
    expect(infos[0]!.nextInMs).toBeGreaterThan(MIN_REFETCH_MS - 100);
  });
});
