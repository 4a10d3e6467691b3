/**
 * Where accepted revocations go with `revocation.redis` (src/admin/revocation-store.ts): the journal, then Redis.
 * A re-probe stopped one worker of a cluster with a journal and Redis and let an agent cross its anomaly threshold
 * on the other: the journal fan-out reported a worker that did not confirm (NotEnforcedError), Redis was never
 * written, and the task's other tokens kept working on every other gate for good — nobody sends an anomaly
 * revocation again. The entries are durable at that point, so they go to Redis, and the answer still says this
 * gate is not sure. Redis itself is the seam here (a writer); the real one is tested in test/fleet.
 */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.ts';
import { chooseRevocationStore } from '../../src/admin/revocation-store.ts';
import { NotEnforcedError, type RevocationStore } from '../../src/admin/revocations-api.ts';
import type { RedisRevocationWriter } from '../../src/fleet/fleet.ts';
import type { RevocationEntry } from '../../src/revocation/entries.ts';

const config = validateConfig(
  {
    upstream: { url: 'http://127.0.0.1:9' },
    service: { audience: 'orders' },
    issuers: [{ issuer: 'https://broker.internal', jwks_file: './jwks.json' }],
    revocation: { journal: './revoked.journal', redis: true },
    redis: { url: 'redis://127.0.0.1:6379/0' },
  },
  '/etc/jitgate/jitgate.yaml',
);

function journal(fails: Error | undefined): RevocationStore & { appended: RevocationEntry[][] } {
  const appended: RevocationEntry[][] = [];
  return {
    journalFile: '/etc/jitgate/revoked.journal',
    appended,
    async append(entries) {
      appended.push([...entries]);
      if (fails !== undefined) throw fails;
      return appended.length;
    },
    status: () => ({}),
  };
}

function redis(): RedisRevocationWriter & { written: RevocationEntry[][] } {
  const written: RevocationEntry[][] = [];
  return {
    description: 'redis://127.0.0.1:6379/0 prefix jitgate:',
    written,
    async write(entries) {
      written.push([...entries]);
      return 7;
    },
    count: async () => 7,
  };
}

const ENTRY: RevocationEntry[] = [{ txn: 'task-1' } as RevocationEntry];

describe('journal, then Redis', () => {
  it("both written: resolves with Redis's count", async () => {
    const j = journal(undefined);
    const r = redis();
    expect(await chooseRevocationStore(config, j, r).append(ENTRY)).toBe(7);
    expect([j.appended.length, r.written.length]).toEqual([1, 1]);
  });

  it('a worker did not confirm (durable in the journal): Redis is written all the same, then the answer says not enforced', async () => {
    const j = journal(new NotEnforcedError('1 worker(s) did not confirm within 5s'));
    const r = redis();
    await expect(chooseRevocationStore(config, j, r).append(ENTRY)).rejects.toBeInstanceOf(NotEnforcedError);
    expect(r.written).toEqual([ENTRY]);
  });

  it('the journal itself failed (not durable): Redis is not written, the error stands', async () => {
    const j = journal(new Error('ENOSPC'));
    const r = redis();
    await expect(chooseRevocationStore(config, j, r).append(ENTRY)).rejects.toThrow('ENOSPC');
    expect(r.written).toEqual([]);
  });
});
