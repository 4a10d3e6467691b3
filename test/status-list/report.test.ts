/**
 * Status list fetch logging (src/status-list/report.ts): a list that keeps failing is retried every
 * few seconds per worker, so its failure lines are rate-limited per list — the first failure and each
 * change log at once, a repeat at most once a minute with the count of the lines left out — while the
 * metric still counts every attempt.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.ts';
import type { StatusListFetchInfo } from '../../src/status-list/list-entry.ts';
import { FAILURE_LOG_INTERVAL_MS, statusListReporter } from '../../src/status-list/report.ts';

const ISSUER = 'https://broker.internal';
const A = 'https://broker.internal/status/a';
const B = 'https://broker.internal/status/b';

function setup() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const metrics = new Metrics({ defaultMetrics: false });
  let now = 1_000_000;
  const report = statusListReporter(metrics, logger, () => now);
  const fetch = (uri: string, result: StatusListFetchInfo['result'], over: Partial<StatusListFetchInfo> = {}): void =>
    report({ issuer: ISSUER, uri, cause: 'scheduled', result, durationMs: 3, entries: 0, bits: 1, ageMs: undefined, nextInMs: 5_000, ...over });
  const advance = (ms: number): void => {
    now += ms;
  };
  const counted = async (result: string): Promise<number> =>
    (await metrics.statusListFetches.get()).values.filter((v) => v.labels.result === result).reduce((n, v) => n + v.value, 0);
  return { lines, fetch, advance, counted };
}

describe('status list failure logs', () => {
  it('one list failing every 5 s: the first failure logs, repeats within a minute do not, then one line with the count', async () => {
    const { lines, fetch, advance, counted } = setup();
    fetch(A, 'status_list_unavailable');
    for (let i = 0; i < 11; i++) {
      advance(5_000);
      fetch(A, 'status_list_unavailable');
    }
    expect(lines.map((l) => l.msg)).toEqual(['status list unusable; its tokens are refused with status_list_unavailable']);
    advance(5_000); // 60 s after the first line
    fetch(A, 'status_list_unavailable');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ level: 50, uri: A, result: 'status_list_unavailable', repeated: 11 });
    // Every attempt is still counted.
    expect(await counted('status_list_unavailable')).toBe(13);
    expect(FAILURE_LOG_INTERVAL_MS).toBe(60_000);
  });

  it('each list is limited on its own; a change of reason logs at once; a recovery logs and resets', () => {
    const { lines, fetch, advance } = setup();
    fetch(A, 'status_list_unavailable');
    fetch(B, 'status_list_unavailable');
    advance(1_000);
    fetch(A, 'status_list_signature');
    fetch(B, 'status_list_unavailable');
    expect(lines.map((l) => [l.uri, l.result])).toEqual([
      [A, 'status_list_unavailable'],
      [B, 'status_list_unavailable'],
      [A, 'status_list_signature'],
    ]);
    fetch(A, 'ok', { entries: 8, ageMs: 0 });
    expect(lines[3]).toMatchObject({ msg: 'status list fetched', uri: A, after_failure: 'status_list_signature' });
    // The same failure again right after a recovery is news: logged.
    fetch(A, 'status_list_signature', { ageMs: 10 });
    expect(lines[4]).toMatchObject({ level: 40, uri: A, result: 'status_list_signature', msg: 'status list refresh failed; keeping the last good list until max_stale' });
    expect(lines).toHaveLength(5);
  });

  it('a list dropped for disuse forgets its failure: its next first failure logs again', () => {
    const { lines, fetch } = setup();
    fetch(A, 'status_list_unavailable');
    fetch(A, 'status_list_unavailable', { nextInMs: -1 });
    fetch(A, 'status_list_unavailable');
    expect(lines).toHaveLength(2);
    expect(lines.map((l) => l.repeated)).toEqual([undefined, undefined]);
  });
});
