/**
 * Config → a Gate with every key and revocation source the config names, wired to metrics and
 * logs. The one place that knows which source class serves which config key.
 */
import type { Logger } from 'pino';
import type { Clock } from './core/clock.ts';
import type { Config } from './config/schema.ts';
import { Gate } from './gate.ts';
import type { Metrics } from './observability/metrics.ts';

export interface BuildGateDeps {
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock?: Clock;
}

export function buildGate(config: Config, file: string, deps: BuildGateDeps): Gate {
  const log = deps.logger.child({ component: 'revocation' });
  const source = config.revocation.file === undefined ? '' : `file:${config.revocation.file}`;
  return new Gate(config, file, {
    clock: deps.clock,
    revocationFileEvents: {
      loaded: ({ entries, errors, durationMs }) => {
        deps.metrics.revocationEntries.labels(source).set(entries);
        deps.metrics.revocationSyncs.labels(source, 'ok').inc();
        deps.metrics.revocationSyncSeconds.labels(source).observe(durationMs / 1000);
        deps.metrics.revocationLastSync.labels(source).set(Date.now() / 1000);
        for (const e of errors) log.warn({ source, line: e.line, problem: e.message }, 'revocation line skipped');
        log.info({ source, entries, skipped: errors.length, duration_ms: Math.round(durationMs) }, 'revocation list loaded');
      },
      failed: (err) => {
        deps.metrics.revocationSyncs.labels(source, 'error').inc();
        log.error({ source, err: err.message }, 'revocation reload failed; keeping the last good list');
      },
    },
  });
}
