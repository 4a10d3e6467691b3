/**
 * SPEC §8 "one audit line per decision" whatever `log.level` says: a gate quieted to warn or error
 * (or silent) still writes its audit lines, chain lines and checkpoints included; only `log.audit:
 * false` turns them off. Real logger, real file, real `jitgate audit verify`.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deny } from '../../src/core/decision.ts';
import { AuditLog } from '../../src/observability/audit.ts';
import { loadCheckpointSigner } from '../../src/observability/audit-checkpoint.ts';
import { createLogger, flushWithin } from '../../src/observability/logger.ts';
import { writeCheckpointKeys } from '../fixtures/audit-gate.ts';
import { runCli } from '../fixtures/cli.ts';

let dir: string;
let keyFile: string;
let jwks: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'jitgate-audit-level-'));
  ({ keyFile, jwks } = await writeCheckpointKeys(dir));
});

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

const lines = async (file: string): Promise<Record<string, any>[]> =>
  (await readFile(file, 'utf8').catch(() => ''))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));

describe('audit lines and log.level', () => {
  for (const level of ['warn', 'error', 'silent']) {
    it(`case=log.level ${level}: every decision, the chain and its checkpoints are written at info; other info lines are not`, async () => {
      const file = join(dir, `${level}.log`);
      const logger = createLogger({ level, destination: file });
      const audit = new AuditLog(logger);
      await audit.startChain({ destination: file, signer: await loadCheckpointSigner(keyFile) });
      logger.info('an ordinary info line');
      audit.record({ transport: 'proxy', method: 'GET', decision: deny('path_not_granted', '/orders/1'), status: 403, latencyMs: 0.2 });
      audit.record({ transport: 'proxy', method: 'GET', decision: { kind: 'allow', reason: 'public', path: '/health', query: '', token: null, grantIndex: -1 }, status: 200, latencyMs: 0.3 });
      audit.closeChain();
      await flushWithin(logger);
      const got = await lines(file);
      expect(got.map((l) => l.event ?? l.decision)).toEqual(['chain_start', 'deny', 'allow', 'checkpoint']);
      expect(got.every((l) => l.type === 'audit' && l.level === 'info')).toBe(true);
      const r = await runCli(['audit', 'verify', file, '--jwks', jwks]);
      expect(r.stdout).toContain('OK: 4 chain lines checked, 1 checkpoint signature(s) valid');
      expect(r.code).toBe(0);
    });
  }

  it('case=log.audit: false (no logger given) → no audit line at any level', async () => {
    const file = join(dir, 'off.log');
    const logger = createLogger({ level: 'info', destination: file });
    const audit = new AuditLog(undefined);
    audit.record({ transport: 'proxy', method: 'GET', decision: deny('path_not_granted', '/orders/1'), status: 403, latencyMs: 0.2 });
    logger.info('only this');
    await flushWithin(logger);
    expect((await lines(file)).map((l) => l.msg ?? l.type)).toEqual(['only this']);
  });
});
