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
import type { Metrics } from '../../observability/metrics.ts';

export interface FileReload {
  /** The files to watch; missing ones count as a state too (their reappearance is a change). */
  readonly files: readonly string[];
  readonly intervalMs: number;
  /** Labels the metric and the log lines: `proxy`, `admin`, `upstream`. */
  readonly name: string;
  readonly metrics?: Metrics;
  readonly logger: Logger;
  /** Reads the files and puts them in service; throws to keep the previous ones. */
  apply(): void;
}

/** Starts polling; returns the function that stops it. The timer never keeps the process alive. */
export function reloadOnChange(r: FileReload): () => void {
  const { files, name, metrics, logger } = r;
  let stamp = stampOf(files);
  const timer = setInterval(() => {
    const now = stampOf(files);
    if (now === stamp) return;
    stamp = now;
    try {
      r.apply();
      metrics?.tlsReloads.labels(name, 'ok').inc();
      logger.info({ listener: name, files }, 'TLS certificate files changed; new handshakes use them');
    } catch (err) {
      metrics?.tlsReloads.labels(name, 'error').inc();
      logger.warn({ listener: name, err: (err as Error).message }, 'TLS certificate files changed but do not load; keeping the previous ones');
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
