/**
 * Runtime wiring of `log.audit_chain` and `log.audit_checkpoint_key` (SPEC §12): loads the
 * checkpoint key, then continues or starts the chain on the audit log. Kept here so runtime.ts
 * only calls in.
 */
import type { Config } from '../config/schema.ts';
import type { AuditLog } from './audit.ts';
import { loadCheckpointSigner } from './audit-checkpoint.ts';
import type { Metrics } from './metrics.ts';

/** `chain`: the worker's chain name in a cluster ("w1"…), undefined for a single process. */
export async function startAuditChain(config: Config, audit: AuditLog, metrics: Metrics, chain: string | undefined): Promise<void> {
  const log = config.log;
  if (!log.audit_chain) return;
  const signer = log.audit_checkpoint_key === undefined ? undefined : await loadCheckpointSigner(log.audit_checkpoint_key);
  await audit.startChain({ destination: log.destination, chain, signer, onCheckpoint: () => metrics.auditCheckpoints.inc() });
}
