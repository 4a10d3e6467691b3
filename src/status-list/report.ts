/**
 * Status list fetches (SPEC §10) in metrics and logs: every attempt is counted by result; a change
 * logs at info, an unchanged list (304) at debug, a failure at warn while a good copy is still held
 * and at error once the list's tokens are refused because of it.
 *
 * Failures are retried per list and per worker (after 5 s, backing off to once a minute), so their log lines are rate-limited
 * per list: the first failure and every change of reason (or of held/not held) log at once; a repeat of
 * the same failure logs at most once per {@link FAILURE_LOG_INTERVAL_MS}, with how many were not logged
 * (`repeated`). The metric still counts every attempt.
 */
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.ts';
import type { StatusListFetchInfo } from './list-entry.ts';

export const FAILURE_LOG_INTERVAL_MS = 60_000;

interface FailureLog {
  readonly result: string;
  readonly held: boolean;
  loggedAtMs: number;
  /** Failures since the last line that were not logged. */
  repeated: number;
}

export function statusListReporter(metrics: Metrics, logger: Logger, nowMs: () => number = Date.now): (i: StatusListFetchInfo) => void {
  const log = logger.child({ component: 'status_list' });
  // One entry per list currently failing; removed on success or when the list is dropped.
  const failing = new Map<string, FailureLog>();
  let sweptAtMs = nowMs();
  return (i) => {
    metrics.statusListFetches.labels(i.issuer, i.result).inc();
    const key = `${i.issuer}\n${i.uri}`;
    const fields = {
      issuer: i.issuer,
      uri: i.uri,
      cause: i.cause,
      result: i.result,
      entries: i.entries,
      bits: i.bits,
      duration_ms: Math.round(i.durationMs),
      age_ms: i.ageMs === undefined ? undefined : Math.round(i.ageMs),
      next_in_ms: Math.round(i.nextInMs),
      ...(i.error === undefined ? {} : { err: i.error.message }),
    };
    if (i.result === 'ok' || i.result === 'not_modified' || i.result === 'older') {
      const was = failing.get(key);
      failing.delete(key);
      // A recovery names the failure it ends, and a 304 that ends one is worth info, not debug.
      const after = was === undefined ? fields : { ...fields, after_failure: was.result };
      if (i.result === 'ok') log.info(after, 'status list fetched');
      else if (i.result === 'not_modified') log[was === undefined ? 'debug' : 'info'](after, 'status list unchanged');
      else log.warn(fields, 'status list older than the one held (a lagging cache?); kept the newer one');
      return;
    }
    const held = i.ageMs !== undefined;
    const now = nowMs();
    // A list evicted between fetches is never reported again, so its line here would stay for good.
    // A list still failing logs at least once per interval (it is retried at least once a minute,
    // list-entry.ts), so one silent for three intervals is gone; URIs passing through do not pile up.
    if (now - sweptAtMs >= FAILURE_LOG_INTERVAL_MS) {
      sweptAtMs = now;
      for (const [k, f] of failing) if (now - f.loggedAtMs >= 3 * FAILURE_LOG_INTERVAL_MS) failing.delete(k);
    }
    const was = failing.get(key);
    let line: object | undefined;
    if (was === undefined || was.result !== i.result || was.held !== held) {
      failing.set(key, { result: i.result, held, loggedAtMs: now, repeated: 0 });
      line = fields;
    } else if (now - was.loggedAtMs >= FAILURE_LOG_INTERVAL_MS) {
      line = { ...fields, repeated: was.repeated };
      was.loggedAtMs = now;
      was.repeated = 0;
    } else {
      was.repeated++;
    }
    if (i.nextInMs < 0) failing.delete(key); // dropped (or stopped): a later use starts over
    if (line !== undefined) logFailure(log, line, i.result, held);
  };
}

function logFailure(log: Logger, fields: object, result: string, held: boolean): void {
  if (held) log.warn(fields, 'status list refresh failed; keeping the last good list until max_stale');
  else log.error(fields, `status list unusable; its tokens are refused with ${result}`);
}
