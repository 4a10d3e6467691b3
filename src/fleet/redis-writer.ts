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

/** Resolves with the live set's size after the write (ZCARD in the last transaction). */
export function writeEntries(client: RedisClient, keys: RedisKeys, entries: readonly RevocationEntry[]): Promise<number> {
  return write(client, keys, entries, true);
}

/**
 * Puts entries back: a gate whose load found Redis missing entries it holds (redis-source.ts). Into
 * the log too: a gate that started while they were missing loaded a set without them and only
 * follows the log from then on (it used to be ZADD only, and such a gate never learned them).
 * Idempotent: the member is the entry's fixed-order JSON, and applying a record twice changes nothing.
 */
export async function restoreLive(client: RedisClient, keys: RedisKeys, entries: readonly RevocationEntry[]): Promise<void> {
  await write(client, keys, entries, true);
}

/** ZADD each entry (and XADD it to the change log when `logged`), CHUNK per transaction. */
async function write(client: RedisClient, keys: RedisKeys, entries: readonly RevocationEntry[], logged: boolean): Promise<number> {
  let size = 0;
  for (let i = 0; i < entries.length; i += CHUNK) {
    const m = client.multi();
    for (const e of entries.slice(i, i + CHUNK)) {
      const json = encodeEntry(e);
      m.addCommand(['ZADD', keys.live, scoreOf(e), json]);
      if (logged) m.addCommand(['XADD', keys.log, '*', LOG_FIELD, json]);
    }
    m.addCommand(['ZCARD', keys.live]);
    // An error reply inside the transaction (WRONGTYPE on a key someone else wrote) rejects here.
    const replies = await m.exec();
    size = Number(replies[replies.length - 1]);
  }
  return size;
}
