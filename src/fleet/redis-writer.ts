/**
 * Writes revocation entries to Redis (SPEC §9): one MULTI/EXEC with, per entry, ZADD into the live
 * set and XADD to the change log, so every gate either sees an entry in both or in neither. The
 * promise resolves only once Redis answered EXEC: that is the acknowledgement `POST /revocations`
 * and `jitgate revoke --redis` wait for. What the acknowledgement guarantees on disk depends on
 * Redis's `appendfsync` (docs/fleet.md "Persistence").
 */
import type { RevocationEntry } from '../revocation/entries.ts';
import { encodeEntry, LOG_FIELD, scoreOf, type RedisKeys } from './redis-layout.ts';
import type { RedisClient } from './redis-link.ts';

/** Commands per MULTI: a 10,000-entry POST stays a few round trips, never one huge reply. */
const CHUNK = 2_000;

/**
 * Puts entries back: a gate whose load found Redis missing entries it holds (redis-source.ts). Into
 * the log too: a gate that started while they were missing loaded a set without them and only
 * follows the log from then on (it used to be ZADD only, and such a gate never learned them).
 *
 * Only what this gate's ZADD NX actually added goes to the log. After Redis lost its data every gate
 * writes back the same entries; each logged all of them until 2026-12-07 night, so 20 gates holding
 * 50,000 entries put a million records in the log, and a gate reading them 1,000 at a time answered
 * from a list eight seconds behind a new revocation (the thirteenth round). Two steps, not one script
 * (a locked-down Redis user needs no EVAL). The cost: a gate that dies in the one round trip between
 * them leaves an entry in the set but not in the log, and a gate that loaded the set while it was
 * missing learns it only at its next full load (the periodic count looks for fewer entries in Redis,
 * not more).
 * Idempotent: the member is the entry's fixed-order JSON, and applying a record twice changes nothing.
 */
export async function restoreLive(client: RedisClient, keys: RedisKeys, entries: readonly RevocationEntry[]): Promise<number> {
  let logged = 0;
  for (let i = 0; i < entries.length; i += CHUNK) {
    const json = entries.slice(i, i + CHUNK).map((e) => [scoreOf(e), encodeEntry(e)] as const);
    const add = client.multi();
    for (const [score, member] of json) add.addCommand(['ZADD', keys.live, 'NX', score, member]);
    const added = await add.exec();
    const log = client.multi();
    let n = 0;
    json.forEach(([, member], k) => {
      if (Number(added[k]) !== 1) return;
      log.addCommand(['XADD', keys.log, '*', LOG_FIELD, member]);
      n++;
    });
    if (n > 0) await log.exec();
    logged += n;
  }
  return logged;
}

/**
 * ZADD each entry and XADD it to the change log, CHUNK per transaction. Resolves with the live set's
 * size after the write (ZCARD in the last transaction).
 */
export async function writeEntries(client: RedisClient, keys: RedisKeys, entries: readonly RevocationEntry[]): Promise<number> {
  let size = 0;
  for (let i = 0; i < entries.length; i += CHUNK) {
    const m = client.multi();
    for (const e of entries.slice(i, i + CHUNK)) {
      const json = encodeEntry(e);
      m.addCommand(['ZADD', keys.live, scoreOf(e), json]);
      m.addCommand(['XADD', keys.log, '*', LOG_FIELD, json]);
    }
    m.addCommand(['ZCARD', keys.live]);
    // An error reply inside the transaction (WRONGTYPE on a key someone else wrote) rejects here.
    const replies = await m.exec();
    size = Number(replies[replies.length - 1]);
  }
  return size;
}
