/**
 * TLS files reloaded on change (SPEC §11: short-lived SVIDs rotate hourly), for the listeners
 * (server-tls.ts) and for the certificate jitgate presents to the backend (upstream-tls.ts).
 *
 * The files are polled (stat is portable; fs.watch misses atomic renames and symlink swaps as
 * Kubernetes does them). On a change `apply` reads and swaps them in; when it throws (a pair that
 * does not load: the key written before the cert, say) the previous ones stay in service until
 * the next change. Each outcome is counted in `jitgate_tls_reloads_total{listener=name,result}`
 * and logged.
 */
import { statSync } from 'node:fs';
import type { Logger } from 'pino';
import { fileVersion } from '../../file-version.ts';
import type { TlsMetrics } from '../../observability/metrics.ts';
import type { ProblemBoard } from '../../observability/problem-board.ts';

export interface FileReload {
  /** The files to watch; missing ones count as a state too (their reappearance is a change). */
  readonly files: readonly string[];
  readonly intervalMs: number;
  /** Labels the metric and the log lines: `proxy`, `admin`, `upstream`. */
  readonly name: string;
  readonly metrics?: TlsMetrics;
  readonly logger: Logger;
  /** Where a refused change is listed (under `name`) until files that load replace it: /readyz shows it. */
  readonly problems?: ProblemBoard;
  /** Reads the files and puts them in service; throws to keep the previous ones (a RetryLater: look again at the next poll). */
  apply(): void;
}

/**
 * Files that load but are not usable yet (a renewed certificate whose notBefore is a few seconds
 * ahead of this clock): tried again at every poll, said once. Other refusals wait for the next
 * change, as a broken pair cannot mend itself (a re-probe: a renewal refused as not yet valid was
 * never looked at again, and the gate went on to serve the expired certificate).
 */
export class RetryLater extends Error {}

/** Starts polling; returns the function that stops it. The timer never keeps the process alive. */
export function reloadOnChange(r: FileReload): () => void {
  const { files, name, metrics, logger, problems } = r;
  let stamp = stampOf(files);
  /** The stamp a RetryLater was last said for. */
  let waiting: string | undefined;
  const timer = setInterval(() => {
    const now = stampOf(files);
    if (now === stamp) return;
    try {
      r.apply();
      stamp = now;
      waiting = undefined;
      problems?.clear(name);
      metrics?.tlsReloads.labels(name, 'ok').inc();
      logger.info({ listener: name, files }, 'TLS certificate files changed; new handshakes use them');
    } catch (err) {
      const later = err instanceof RetryLater;
      if (!later) stamp = now;
      if (later && waiting === now) return;
      if (later) waiting = now;
      metrics?.tlsReloads.labels(name, 'error').inc();
      const what = later ? 'TLS certificate files changed but are not valid now (not yet, or no longer); keeping the previous ones and looking again at every poll' : 'TLS certificate files changed but do not load; keeping the previous ones';
      problems?.set(name, `${name} TLS: ${what}: ${(err as Error).message}`);
      logger.warn({ listener: name, err: (err as Error).message }, what);
    }
  }, r.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** fileVersion of every file, as one comparable string ('-' parts for missing files). */
function stampOf(files: readonly string[]): string {
  let s = '';
  for (const f of files) {
    try {
      const st = statSync(f);
      s += `${fileVersion(st)}|`;
    } catch {
      s += '-|';
    }
  }
  return s;
}
