/**
 * SIGHUP: a graceful reload of the files the gate reads, never a stop (issue 21 item 10; nginx
 * and HAProxy reload on HUP too). Node's default for SIGHUP is to die at once, resetting every
 * in-flight request with nothing logged; with this handler installed the process keeps serving
 * and re-reads, each part keeping what it has when the new data is unusable:
 * - every issuer's `jwks_file` (a file with no usable key leaves the current set in use);
 * - `revocation.file` (through the same guard as a polled change: a refused text keeps the list,
 *   an entry a text leaves out is let go once a read a second later leaves it out too);
 * - `revocation.url` is synced at once (a sync that fails makes the reload `ok: false`).
 * The config file itself is not re-read: listeners, issuers and limits change with a restart
 * (a rolling one, SIGTERM drains). TLS certificate and CA files are not read here: each TLS block
 * polls its own files every `reload_interval` (1 s by default; transports/tls/file-reload.ts).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { reloadHandled } from './process-signals.ts';
import type { Logger } from 'pino';
import type { Gate } from './gate.ts';
import type { Metrics } from './observability/metrics.ts';
import type { ReloadReport } from './reload-report.ts';

/** Re-reads key files and revocation sources; resolves true when every part loaded. Never rejects. */
export async function reloadFiles(gate: Gate, metrics: Metrics, logger: Logger): Promise<boolean> {
  const log = logger.child({ component: 'reload' });
  const started = performance.now();
  let ok = true;
  const report = (r: ReloadReport): void => {
    if (!r.ok) ok = false;
    if (r.msg === undefined) return;
    if (r.ok) log.info(r.fields ?? {}, r.msg);
    else log.error(r.fields ?? {}, r.msg);
  };
  for (const k of gate.issuerKeys) if (k.reloadOnSignal !== undefined) report(await k.reloadOnSignal());
  for (const s of gate.revocation.sources) if (s.reloadOnSignal !== undefined) report(await s.reloadOnSignal());
  metrics.configReloads.labels(ok ? 'ok' : 'error').inc();
  log.info({ ok, duration_ms: Math.round(performance.now() - started) }, 'reload done');
  return ok;
}

/**
 * Installs the SIGHUP handler; reloads never overlap (a HUP during one runs once more after it).
 * Installed in the single process, the cluster primary (which passes it on to the workers) and each
 * worker, so a HUP to the whole process group does not kill anyone either.
 */
export function onReloadSignal(reload: () => Promise<unknown>, logger: Logger): void {
  let running: Promise<unknown> | undefined;
  let again = false;
  const run = (): void => {
    running = reload().finally(() => {
      running = undefined;
      if (again) {
        again = false;
        run();
      }
    });
  };
  reloadHandled();
  process.on('SIGHUP', () => {
    logger.info({ signal: 'SIGHUP' }, 'reload requested');
    if (running !== undefined) again = true;
    else run();
  });
}

/**
 * The config file is not re-read on SIGHUP (above), and an operator who edited it and sent one saw
 * `reload done` and took a security setting for applied (a black-box probe: require_client_cert and
 * anomaly.deny_threshold kept their old values). So each SIGHUP compares the file with the text this
 * process started from and says so when they differ. `startedText` is the text the config was loaded from.
 */
export function warnOnConfigDrift(file: string, startedText: string, logger: Logger): void {
  const started = digest(startedText);
  process.on('SIGHUP', () => {
    void readFile(file, 'utf8').then(
      (text) => {
        if (digest(text) !== started) logger.warn({ config: file }, 'the config file differs from the one this process started with; SIGHUP re-reads key and revocation files only: restart (SIGTERM drains) to apply the config');
      },
      (err: NodeJS.ErrnoException) => logger.warn({ config: file, code: err.code }, 'the config file cannot be read; SIGHUP re-reads key and revocation files only, the running config is unchanged'),
    );
  });
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
