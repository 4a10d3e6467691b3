/**
 * The signals a jitgate process answers besides SIGTERM/SIGINT once it serves (runtime.ts
 * onShutdownSignals) and SIGHUP's file reload once it can reload (reload.ts), and what each does
 * before that. `serve` installs these first thing, so the single process, the cluster primary and
 * each worker have them from their first moment.
 *
 * - SIGHUP, and SIGUSR1 where node delivers it, open the log file again (logrotate's postrotate) —
 *   besides SIGHUP's reload. Node's own meaning of SIGUSR1, its inspector, is taken away first thing
 *   (early-signals.ts); the package scripts and the image run node with --disable-sigusr1, which
 *   closes the moment before that and also keeps the signal from reaching us, hence SIGHUP.
 * - SIGUSR2 is ignored, with a line (node's default: die at once, code 140, no drain).
 * - Until the process serves, SIGHUP is a line and not a death (node's default; a reload sent while a
 *   start waits on a JWKS URL or Redis), and SIGTERM/SIGINT end it at once with 128+n and a line
 *   saying nothing was served. A log reopen asked for meanwhile is done once the log is handed over.
 */
import type { Logger } from 'pino';
import { onEarlySignal } from './early-signals.ts';
import { reopenDestination } from './observability/logger.ts';

let installed = false;
let reloadReady = false;
let shutdownReady = false;
let logger: Logger | undefined;
let reopenLogs: (() => void) | undefined;
let reopenWanted = false;

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
  // A reopen while starting (the log may be open already) is carried out once the log is handed over.
  const reopen = (signal: NodeJS.Signals): void => {
    if (reopenLogs !== undefined) reopenLogs();
    else {
      reopenWanted = true;
      say('info', signal, 'log reopen requested while starting; done once started');
    }
  };
  onEarlySignal('SIGUSR1', () => reopen('SIGUSR1'));
  process.on('SIGUSR2', () => say('warn', 'SIGUSR2', 'SIGUSR2 ignored (SIGHUP reloads and reopens the log, SIGTERM drains)'));
  onEarlySignal('SIGHUP', () => {
    if (!reloadReady) say('warn', 'SIGHUP', 'reload ignored: jitgate is still starting');
    reopen('SIGHUP');
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
 * SIGHUP and SIGUSR1 from now on run `reopen` (this process's log, and in a cluster primary its
 * workers' too), and lines about signals go through `log`.
 */
export function onLogReopen(log: Logger, reopen: () => void): void {
  logger = log;
  reopenLogs = reopen;
  if (reopenWanted) {
    reopenWanted = false;
    reopen();
  }
}

/**
 * Opens this process's log file again, then says how it went — in the new file, or in the one still
 * in use when the path could not be opened (a directory now, a directory gone read-only). Requests
 * that come while one is under way are folded into one more after it (a storm of USR1s).
 */
export function reopenOwnLog(log: Logger): void {
  if (reopening) {
    reopenAgain = true;
    return;
  }
  reopening = true;
  const started = reopenDestination(log, (err) => {
    if (err === undefined) log.info('log file reopened');
    else log.error({ err: err.message }, 'log reopen failed; lines go on to the file open before');
    reopening = false;
    if (reopenAgain) {
      reopenAgain = false;
      reopenOwnLog(log);
    }
  });
  if (!started) {
    reopening = false;
    log.info('log reopen requested; the log destination is not a file, nothing to reopen');
  }
}

let reopening = false;
let reopenAgain = false;
