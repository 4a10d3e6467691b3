/**
 * The signals a jitgate process answers besides SIGTERM/SIGINT once it serves (runtime.ts
 * onShutdownSignals) and SIGHUP once it can reload (reload.ts), and what each does before that.
 * `serve` installs these first thing, so the single process, the cluster primary and each worker have
 * them from their first moment.
 *
 * - SIGUSR1 opens the log file again (logrotate's postrotate, as nginx reads USR1). Node's own meaning
 *   is to start its inspector on 127.0.0.1:9229, with which anything that can reach that port (any
 *   container in the pod) runs code inside the authorization gate (a probe); a listener of our own
 *   replaces it.
 * - SIGUSR2 is ignored, with a line (node's default: die at once, code 140, no drain).
 * - Until the process serves, SIGHUP is a line and not a death (node's default; a reload sent while a
 *   start waits on a JWKS URL or Redis), and SIGTERM/SIGINT end it at once with 128+n and a line
 *   saying nothing was served.
 */
import type { Logger } from 'pino';
import { reopenDestination } from './observability/logger.ts';

let installed = false;
let reloadReady = false;
let shutdownReady = false;
let logger: Logger | undefined;
let reopenLogs: (() => void) | undefined;

const EXIT_CODE: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143 };

/** A line through the process's logger once it has one, else straight to stderr in the same shape. */
function say(level: 'info' | 'warn', signal: NodeJS.Signals, msg: string): void {
  if (logger !== undefined) {
    logger[level]({ signal }, msg);
    return;
  }
  process.stderr.write(`${JSON.stringify({ level, time: new Date().toISOString(), pid: process.pid, signal, msg })}\n`);
}

export function guardSignals(): void {
  if (installed) return;
  installed = true;
  process.on('SIGUSR1', () => {
    if (reopenLogs === undefined) say('info', 'SIGUSR1', 'log reopen requested before the log is open; nothing to do');
    else reopenLogs();
  });
  process.on('SIGUSR2', () => say('warn', 'SIGUSR2', 'SIGUSR2 ignored (SIGHUP reloads, SIGUSR1 reopens the log, SIGTERM drains)'));
  process.on('SIGHUP', () => {
    if (!reloadReady) say('warn', 'SIGHUP', 'reload ignored: jitgate is still starting');
  });
  const stop = (signal: NodeJS.Signals): void => {
    if (shutdownReady) return;
    say('warn', signal, 'stopped while starting; nothing was served');
    process.exit(EXIT_CODE[signal] ?? 1);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** reload.ts: SIGHUP is handled from now on. */
export function reloadHandled(): void {
  reloadReady = true;
}

/** runtime.ts: SIGTERM and SIGINT drain from now on. */
export function shutdownHandled(): void {
  shutdownReady = true;
}

/**
 * SIGUSR1 from now on runs `reopen` (this process's log, and in a cluster primary its workers' too),
 * and lines about signals go through `log`.
 */
export function onLogReopen(log: Logger, reopen: () => void): void {
  logger = log;
  reopenLogs = reopen;
}

/** Opens this process's log file again and says so in the new file (or that there is no file to open). */
export function reopenOwnLog(log: Logger): void {
  if (reopenDestination(log)) log.info({ signal: 'SIGUSR1' }, 'log file reopened');
  else log.info({ signal: 'SIGUSR1' }, 'log reopen requested; the log destination is not a file, nothing to reopen');
}
