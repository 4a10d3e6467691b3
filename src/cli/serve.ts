/**
 * `jitgate serve -c FILE` (or `JITGATE_CONFIG`): runs the gate until SIGTERM/SIGINT, then drains
 * (SPEC §8). One startup line names the listen addresses. Operator errors — an invalid config, an
 * unreadable key file, a busy port — print their key-path lines and exit 1, never a stack trace.
 *
 * With `workers` > 1 this process becomes the cluster primary and re-runs itself as the workers
 * (src/cluster.ts); a forked worker arrives here too and is routed to runWorker.
 *
 * @module
 */
import cluster from 'node:cluster';
import { runWorker, startPrimary, workerCount } from '../cluster.ts';
import { verifyModeOf } from '../config/compile.ts';
import { cores } from '../cpu-cores.ts';
import { parseConfigText, readConfigText } from '../config/load.ts';
import { ConfigError, StartupError } from '../errors.ts';
import { startupProblems } from '../preflight.ts';
import { logDestinationOpenProblem, logDestinationProblem } from '../config/path-checks.ts';
import type { Config } from '../config/schema.ts';
import { createLogger, flushWithin, SECOND_SIGNAL_FLUSH_MS } from '../observability/logger.ts';
import { onReloadSignal, warnOnConfigDrift } from '../reload.ts';
import { listenUrl, LOG_FLUSH_MS, onShutdownSignals, startJitgate } from '../runtime.ts';
import { configFileArg, reportStartupError } from './check-config.ts';
import { applyV8Flags } from '../v8-flags.ts';
import { guardSignals, onLogReopen, reopenOwnLog } from '../process-signals.ts';

const USAGE = `Usage: jitgate serve -c FILE

Runs the gate: the traffic proxy, the admin listener (metrics, health, revocation API) and the
ext_authz services the config enables. SIGTERM or SIGINT drains in-flight requests (up to
shutdown.grace) and exits 0; a second signal exits at once. SIGHUP re-reads the jwks_file key
sets and the revocation file (and syncs revocation.url) without dropping a request, and opens the
log file again (logrotate).

Options:
  -c, --config FILE   the config file (default: $JITGATE_CONFIG)
  -h, --help          show this help
`;

/** After a clean drain nothing should hold the event loop; if something does, do not hang. */
const EXIT_FALLBACK_MS = 2000;

export async function run(argv: string[]): Promise<number> {
  const file = configFileArg(argv, 'serve', USAGE);
  if (typeof file === 'number') return file;
  guardSignals();
  applyV8Flags();
  let config: Config;
  let text: string;
  try {
    text = await readConfigText(file);
    config = parseConfigText(text, file);
  } catch (err) {
    return reportStartupError('serve', err);
  }
  let code = 1;
  try {
    code = await (cluster.isWorker ? runWorker(config, file) : serve(config, file, text)).catch((err: unknown) => reportStartupError('serve', err));
    return code;
  } finally {
    // However serving ended — a drain, a start-up error, a bug that threw after the listeners opened
    // (index.ts prints it) — the process ends: open listeners would otherwise keep it alive, serving,
    // with no signal handling (a probe saw exactly that).
    setTimeout(() => process.exit(code), EXIT_FALLBACK_MS).unref();
  }
}

/**
 * What the start line says about CPU: the cores this process may use (affinity and cgroup CPU quota,
 * src/cpu-cores.ts) and where a cache miss's signature check runs as a result (docs/operations.md).
 */
function cpuFields(config: Config): { cores: number; signature_checks: 'event loop' | 'thread pool' } {
  return { cores: cores(), signature_checks: verifyModeOf(config) === 'pool' ? 'thread pool' : 'event loop' };
}

async function serve(config: Config, file: string, text: string): Promise<number> {
  // Before any logger opens it: an unusable destination is a line naming the key, not SonicBoom's stack trace.
  const destination = logDestinationProblem(config.log.destination) ?? logDestinationOpenProblem(config.log.destination);
  if (destination !== undefined) throw new StartupError(destination);
  // Every local file, before the first side effect (the audit file's chain start, the fleet's DPoP window in Redis).
  const problems = await startupProblems(config);
  if (problems.length > 0) throw new ConfigError(file, problems);
  const count = workerCount(config.workers);
  if (count > 1) {
    const logger = createLogger(config.log);
    const primary = await startPrimary(config, count, logger);
    warnOnConfigDrift(file, text, logger);
    logger.info({ proxy: primary.proxy, admin: listenUrl(primary.admin), workers: count, ...cpuFields(config), config: file }, 'jitgate started');
    logger.flush();
    // The primary's own lines (a worker that died, a reload) are batched like a worker's: written
    // every second, not when 64 KiB have gathered (a probe saw them only at exit).
    const flusher = setInterval(() => logger.flush(), LOG_FLUSH_MS);
    flusher.unref();
    return primary.done.finally(() => clearInterval(flusher));
  }
  const running = await startJitgate(config, file);
  const { proxy, admin, extAuthz } = running.listeners;
  const log = running.logger;
  try {
    log.info({ proxy: listenUrl(proxy, config.listen.tls ? 'https' : 'http'), admin: listenUrl(admin, config.admin.tls ? 'https' : 'http'), ext_authz: extAuthz.map((l) => `${l.name} ${listenUrl(l)}`), workers: 1, ...cpuFields(config), config: file }, 'jitgate started');
    log.flush();
  } catch (err) {
    void running.close(0).catch(() => undefined); // not left serving without its signal handlers
    throw err;
  }
  onLogReopen(log, () => reopenOwnLog(log));
  onReloadSignal(() => running.reload(), log);
  warnOnConfigDrift(file, text, log);
  return new Promise<number>((resolve) => {
    onShutdownSignals(
      (signal) => {
        log.info({ signal }, 'shutdown requested');
        void running.close().then(() => resolve(0));
      },
      (signal, exitCode) => {
        log.warn({ signal }, 'second signal: exiting without waiting for in-flight requests');
        void flushWithin(log, SECOND_SIGNAL_FLUSH_MS).then(() => process.exit(exitCode));
      },
    );
  });
}
