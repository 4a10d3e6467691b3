/**
 * pino loggers. Operational logs and audit lines share one asynchronous destination so neither
 * blocks the event loop; `authorization`, `dpop` and `token` are redacted wherever they appear,
 * as a second line of defence — nothing logs them on purpose.
 */
import pino, { type DestinationStream, type Logger } from 'pino';

export interface LogOptions {
  readonly level: string;
  /** `stdout`, `stderr` or a file path. */
  readonly destination: string;
}

/** Paths pino censors in every line; the audit line derives its own list from this one (audit.ts). */
export const REDACT: readonly string[] = [
  'authorization',
  'dpop',
  'token',
  'headers.authorization',
  'headers.dpop',
  'req.headers.authorization',
  'req.headers.dpop',
  '*.authorization',
  '*.token',
];

export const REDACT_CENSOR = '[redacted]';

export function createDestination(destination: string): DestinationStream & { flushSync?: () => void } {
  if (destination === 'stdout') return pino.destination({ fd: 1, sync: false, minLength: 4096 });
  if (destination === 'stderr') return pino.destination({ fd: 2, sync: false });
  return pino.destination({ dest: destination, sync: false, mkdir: true, minLength: 4096 });
}

/**
 * pino's `isoTime` fragment, formatted once per millisecond: a busy gate writes many audit lines
 * in the same millisecond, and `toISOString` was a visible slice of each line's cost.
 */
export function isoTimePerMs(now: () => number = Date.now): () => string {
  let last = Number.NaN;
  let text = '';
  return () => {
    const ms = now();
    if (ms !== last) {
      last = ms;
      text = `,"time":"${new Date(ms).toISOString()}"`;
    }
    return text;
  };
}

export function createLogger(options: LogOptions, stream?: DestinationStream): Logger {
  return pino(
    {
      level: options.level,
      base: { pid: process.pid },
      redact: { paths: [...REDACT], censor: REDACT_CENSOR },
      timestamp: isoTimePerMs(),
      formatters: { level: (label) => ({ level: label }) },
    },
    stream ?? createDestination(options.destination),
  );
}
