/**
 * Startup checks of the SPEC §12 keys that span blocks (the schema checks each key alone). Each
 * problem names the key, like every other config error.
 */
import type { Config } from '../config/schema.ts';
import { ConfigError } from '../errors.ts';

export function section12Problems(config: Config): string[] {
  const problems: string[] = [];
  // A revocation that is not durable would be forgotten by a restart, and the probing token with it.
  // `revocation.redis` (SPEC §9) is the other durable store, where that build has it.
  const rev = config.revocation as Config['revocation'] & { redis?: unknown };
  if (config.anomaly !== undefined && rev.journal === undefined && (rev.redis === undefined || rev.redis === false)) {
    problems.push('anomaly: needs a durable revocation store to write to; set revocation.journal (or revocation.redis), or remove anomaly');
  }
  if (config.log.audit_chain && !config.log.audit) problems.push('log.audit_chain: chains audit lines, so it needs log.audit: true');
  if (config.log.audit_checkpoint_key !== undefined && !config.log.audit_chain) {
    problems.push('log.audit_checkpoint_key: signs checkpoints of the audit chain, so it needs log.audit_chain: true');
  }
  return problems;
}

/** @throws ConfigError naming every problem. */
export function checkSection12(config: Config, file: string): void {
  const problems = section12Problems(config);
  if (problems.length > 0) throw new ConfigError(file, problems);
}
