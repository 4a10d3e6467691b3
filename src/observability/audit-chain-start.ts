/**
 * Runtime wiring of `log.audit_chain` and `log.audit_checkpoint_key` (SPEC §12): loads the
 * checkpoint key, then continues or starts the chain on the audit log. Kept here so runtime.ts
 * only calls in.
 */
import type { Config } from '../config/schema.ts';
import type { AuditLog } from './audit.ts';
import type { ChainRun } from './audit-chain.ts';
import { loadCheckpointSigner } from './audit-checkpoint.ts';
import type { Metrics } from './metrics.ts';

/**
 * The cluster run a worker belongs to, `<run id>/<workers>`, set by the primary (src/cluster/worker-slots.ts):
 * its audit chain's chain_start names both, so `jitgate audit verify` knows every chain a gracefully
 * stopped run must hold (SPEC §12).
 */
export const AUDIT_RUN_ENV = 'JITGATE_AUDIT_RUN';

/** A cluster worker's place in the audit log: its chain ("w1"…) and the primary's run (id and worker count). */
export interface WorkerChain {
  readonly chain: string;
  readonly run: ChainRun | undefined;
}

/**
 * The worker's chain from what the primary put in its environment: `slot` (JITGATE_WORKER_SLOT) and
 * `run` (`<id>/<workers>`, JITGATE_AUDIT_RUN; undefined or malformed: the chain names no run).
 */
export function workerChain(slot: string | undefined, run: string | undefined): WorkerChain {
  const m = run === undefined ? null : /^([0-9a-f]{16})\/([1-9][0-9]{0,3})$/.exec(run);
  return { chain: `w${slot ?? process.pid}`, run: m === null ? undefined : { id: m[1]!, workers: Number(m[2]) } };
}

/** `worker`: the cluster worker's chain and run, undefined for a single process. */
export async function startAuditChain(config: Config, audit: AuditLog, metrics: Metrics, worker: WorkerChain | undefined): Promise<void> {
  const log = config.log;
  if (!log.audit_chain) return;
  const signer = log.audit_checkpoint_key === undefined ? undefined : await loadCheckpointSigner(log.audit_checkpoint_key);
  await audit.startChain({ destination: log.destination, chain: worker?.chain, run: worker?.run, signer, onCheckpoint: () => metrics.auditCheckpoints.inc() });
}
