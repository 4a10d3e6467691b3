/**
 * Status list fetches (SPEC §10) in metrics and logs: every attempt is counted by result; a change
 * logs at info, an unchanged list (304) at debug, a failure at warn while a good copy is still held
 * and at error once the list's tokens are refused because of it.
 */
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.ts';
import type { StatusListFetchInfo } from './list-entry.ts';

export function statusListReporter(metrics: Metrics, logger: Logger): (i: StatusListFetchInfo) => void {
  const log = logger.child({ component: 'status_list' });
  return (i) => {
    metrics.statusListFetches.labels(i.issuer, i.result).inc();
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
    if (i.result === 'ok') log.info(fields, 'status list fetched');
    else if (i.result === 'not_modified') log.debug(fields, 'status list unchanged');
    else if (i.result === 'older') log.warn(fields, 'status list older than the one held (a lagging cache?); kept the newer one');
    else if (i.ageMs !== undefined) log.warn(fields, 'status list refresh failed; keeping the last good list until max_stale');
    else log.error(fields, `status list unusable; its tokens are refused with ${i.result}`);
  };
}
