/**
 * THE place that decides where accepted revocations go (SPEC §5, §9). runtime.ts (a single gate, a
 * cluster worker) and cluster.ts (the primary, which owns the admin API there) both call
 * chooseRevocationStore; the store it returns serves `POST /revocations` and is what other code
 * (e.g. anomaly response) calls `append` on: `TransportContext.revocations` (src/transports/context.ts).
 *
 * - `revocation.redis: false`: the local store (the journal; in a cluster the primary's journal plus
 *   every worker over IPC).
 * - `revocation.redis: true`: the journal first when one is configured (this gate enforces at once
 *   and keeps it across a restart), then Redis; `append` resolves only after Redis acknowledged the
 *   write (MULTI/EXEC), and rejects with RedisUnavailableError within `redis.command_timeout`
 *   when Redis is away, so the API answers 503 rather than a late 201.
 */
import type { Config } from '../config/schema.ts';
import type { RedisRevocationWriter } from '../fleet/fleet.ts';
import { RedisUnavailableError } from '../fleet/redis-errors.ts';
import { NotEnforcedError, type RevocationStore } from './revocations-api.ts';

export function chooseRevocationStore(config: Config, local: RevocationStore, redis: RedisRevocationWriter | undefined): RevocationStore {
  if (!config.revocation.redis) return local;
  if (redis === undefined) throw new TypeError('revocation.redis is set but no Redis writer was built');
  return {
    journalFile: local.journalFile,
    redis: redis.description,
    async append(entries) {
      // A cluster worker that did not confirm (NotEnforcedError) comes after the journal's fsync: the entries
      // are durable, so the fleet still gets them, and the answer still says this gate is not sure. Skipping
      // Redis there left an anomaly revocation on this gate alone for good: nobody sends it again (a re-probe).
      let notEnforced: NotEnforcedError | undefined;
      if (local.journalFile !== undefined) {
        try {
          await local.append(entries);
        } catch (err) {
          if (!(err instanceof NotEnforcedError)) throw err;
          notEnforced = err;
        }
      }
      let size: number;
      try {
        size = await redis.write(entries);
      } catch (err) {
        if (err instanceof RedisUnavailableError) throw err;
        throw new RedisUnavailableError(`Redis did not acknowledge the write: ${(err as Error).message}`, { cause: err });
      }
      if (notEnforced !== undefined) throw notEnforced;
      return size;
    },
    status: async () => ({ ...(await local.status()), redis: redis.description }),
  };
}

/** A store for a process that holds no journal of its own (a cluster worker): appends are refused. */
export const NO_LOCAL_STORE: RevocationStore = {
  journalFile: undefined,
  append: () => Promise.reject(new Error('this process holds no revocation journal (the cluster primary owns it)')),
  status: () => ({ entries: 0, stale: false, journal: null, sources: [] }),
};
