/**
 * `workers: N | auto` (N > 1): a node:cluster primary forks N workers that share the traffic port
 * (the primary accepts and hands connections out round-robin). `workers: 1` runs no cluster at all.
 *
 * Who owns what:
 * - Each worker runs the whole gate (keys, revocation sources, token cache, proxy, ext_authz) —
 *   decisions never cross a process boundary.
 * - The primary owns the admin listener, so there is one admin port and it tells the truth about
 *   all workers: `/metrics` sums every worker's registry (src/cluster/cluster-metrics.ts: counters
 *   summed and kept across worker replacement; gauges by their declared aggregator; the primary's
 *   own process is not included), `/readyz` is ready only when every worker is running and ready.
 * - The primary also owns the revocation API and its journal: it replays the file before forking,
 *   appends and fsyncs each POST, then hands the entries to every worker over IPC and answers 201
 *   only when all of them confirmed. A worker (a replacement after a crash too) asks for every
 *   live entry before it serves (src/revocation/journal-follower.ts). `revocation.file` and
 *   `revocation.url` are read by each worker itself.
 *
 * - DPoP: the primary holds the one proof-jti cache, so a proof is single-use across workers
 *   (src/cache/shared-dpop-replay.ts), and makes the nonce key every worker derives nonces from.
 *
 * Shutdown: SIGTERM/SIGINT to the primary asks every worker to drain (IPC, not a signal, so a
 * terminal's Ctrl-C that reached the workers too is not counted twice); the primary exits 0 once
 * all of them exited 0. A second signal kills the workers and exits at once. A worker that dies
 * while serving is replaced.
 *
 * This file is the worker's side; the primary's is src/cluster/primary.ts.
 */
import cluster from 'node:cluster';
import { gaugeRefresher, withDraining } from './admin/health.ts';
import { PrimaryRefusalCounter } from './anomaly/primary-counter.ts';
import { countsInRedis } from './anomaly/refusal-counter.ts';
import { PrimaryRevocationWriter } from './anomaly/primary-writer.ts';
import type { ToPrimary } from './cluster/pending-answers.ts';
import type { Config } from './config/schema.ts';
import { cores } from './cpu-cores.ts';
import { JitgateError } from './errors.ts';
import { flushWithin, SECOND_SIGNAL_FLUSH_MS } from './observability/logger.ts';
import type { PrimaryChannel } from './revocation/journal-follower.ts';
import { onReloadSignal } from './reload.ts';
import { onLogReopen, reopenOwnLog } from './process-signals.ts';
import { listenUrl, onShutdownSignals, startJitgateWorker, type WorkerRunning } from './runtime.ts';
import { answerMetrics } from './cluster/cluster-metrics.ts';
import { NONCE_KEY_ENV, type FromWorker, type ToWorker } from './cluster/messages.ts';

export { startPrimary, type Primary } from './cluster/primary.ts';

export function workerCount(workers: number | 'auto'): number {
  return workers === 'auto' ? cores() : workers;
}

/** The worker's side of the IPC channel, as the journal follower, the DPoP replay guard and the anomaly watch use it. */
const toPrimary: PrimaryChannel & ToPrimary<FromWorker> = {
  send: (m) => void process.send!(m),
  on: (event, listener) => process.on(event, listener),
  off: (event, listener) => process.off(event, listener),
};

/** A forked worker: the gate without the admin listener, answering the primary over IPC. */
export async function runWorker(config: Config, file: string): Promise<number> {
  let running: WorkerRunning;
  try {
    const nonceKey = process.env[NONCE_KEY_ENV];
    delete process.env[NONCE_KEY_ENV]; // not for anything this worker might start
    running = await startJitgateWorker(config, file, {
      primary: { channel: toPrimary, nonceKey: nonceKey === undefined ? undefined : Buffer.from(nonceKey, 'base64') },
      revocationWriter: config.anomaly === undefined ? undefined : new PrimaryRevocationWriter(toPrimary),
      // Counting in Redis, the worker counts there itself, with every other gate (anomaly/wiring.ts).
      refusalCounter: config.anomaly === undefined || countsInRedis(config) ? undefined : new PrimaryRefusalCounter(toPrimary),
    });
  } catch (err) {
    if (!(err instanceof JitgateError)) throw err;
    process.send!({ type: 'jitgate:failed', message: err.message } satisfies FromWorker);
    return 1;
  }
  const r = running;
  const refresh = gaugeRefresher(r.gate, r.metrics);
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));
  const drain = (graceMs?: number): void =>
    void r.close(graceMs).then(() => {
      // The IPC channel would keep the event loop (and so the worker) alive.
      if (process.connected) process.disconnect();
      resolveDone(0);
    });

  process.on('message', (msg: ToWorker) => {
    if (msg?.type === 'jitgate:metrics') answerMetrics(msg.id, () => refresh(r.draining), r.metrics.registry);
    else if (msg?.type === 'jitgate:readiness') {
      process.send!({ type: 'jitgate:readiness', id: msg.id, ...withDraining(r.gate.readiness(), r.draining) } satisfies FromWorker);
    } else if (msg?.type === 'jitgate:drain') drain(msg.graceMs);
    else if (msg?.type === 'jitgate:reload') void r.reload();
    else if (msg?.type === 'jitgate:reopen-log') reopenOwnLog(r.logger);
  });
  // The worker's side of the same race: a message sent as the primary dies fails with EPIPE, which node
  // raises on `process` and re-raises on cluster.worker; unheard there, it ended this worker mid-drain
  // (the disconnect below drains it).
  cluster.worker?.on('error', (err: NodeJS.ErrnoException) => r.logger.warn({ err: err.code ?? err.message }, 'a message to the cluster primary failed'));
  onLogReopen(r.logger, () => reopenOwnLog(r.logger));
  onReloadSignal(() => r.reload(), r.logger);
  // The primary is gone (killed): nobody will hand out connections or ask for a drain. Node's
  // cluster code would exit this worker at once on an unexpected disconnect, resetting every
  // in-flight request; marking the disconnect as expected lets the drain finish them first.
  cluster.worker?.once('disconnect', () => {
    if (r.draining) return; // our own disconnect after a drain: exiting is right
    cluster.worker!.exitedAfterDisconnect = true;
    r.logger.warn('cluster primary gone; draining this worker');
    drain();
  });
  onShutdownSignals(
    () => drain(),
    (_signal, exitCode) => void flushWithin(r.logger, SECOND_SIGNAL_FLUSH_MS).then(() => process.exit(exitCode)),
  );
  process.send!({
    type: 'jitgate:started',
    proxy: listenUrl(r.listeners.proxy, r.config.listen.tls ? 'https' : 'http'),
    extAuthz: r.listeners.extAuthz.map((l) => listenUrl(l)),
  } satisfies FromWorker);
  return done;
}
