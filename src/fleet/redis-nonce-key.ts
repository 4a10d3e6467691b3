/**
 * The fleet's DPoP nonce key (docs/fleet.md "DPoP nonces"): the first gate to start writes 32
 * random bytes with SET NX, and every gate, that one included, uses what Redis then holds. Two
 * gates starting together both SET NX; one write wins and both read it. Read once, at start (or,
 * for a gate started while Redis was unreachable, once it answers: src/fleet/fleet.ts): a
 * key lost from Redis afterwards (FLUSHALL, a restart without persistence) splits the fleet's
 * nonces until the gates restart, which costs clients one `use_dpop_nonce` retry, never an allow.
 */
import { randomBytes } from 'node:crypto';
import { StartupError } from '../errors.ts';
import type { RedisKeys } from './redis-layout.ts';
import type { RedisLink } from './redis-link.ts';

const KEY_BYTES = 32;

export async function sharedNonceKey(link: RedisLink, keys: RedisKeys): Promise<Buffer> {
  let stored: string | null;
  try {
    stored = await link.run('dpop nonce key', async (c) => {
      // Read first: a fleet that has its key needs no write, so a gate starts while Redis refuses
      // writes (maxmemory under noeviction, a read-only replica) — a rolling restart then is no outage.
      const existing = await c.get(keys.nonceKey);
      if (existing !== null) return existing;
      await c.set(keys.nonceKey, randomBytes(KEY_BYTES).toString('base64url'), { NX: true });
      return c.get(keys.nonceKey);
    });
  } catch (err) {
    const message = (err as Error).message;
    // NOPERM from a Redis user made before nonces were shared (docs/fleet.md, ACL); OOM or READONLY when Redis refuses writes.
    const hint = /^(OOM|READONLY)\b/.test(message) ? 'Redis refuses writes: free memory (maxmemory) or point redis.url at the primary' : 'the Redis user needs +set and +get on it';
    throw new StartupError(`dpop.use_nonce: could not set and read the fleet's DPoP nonce key ${keys.nonceKey} in Redis (${message}); ${hint}`, { cause: err });
  }
  // 43 base64url characters are exactly 32 bytes. Anything else is not ours, or damaged: deriving
  // nonces from it would be guessable or differ between gates.
  if (typeof stored !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(stored)) {
    throw new StartupError(`redis.key_prefix: the Redis key ${keys.nonceKey} does not hold a ${KEY_BYTES}-byte base64url DPoP nonce key (${stored === null ? 'it vanished after SET NX' : `${stored.length} characters`}); delete it and every gate on this prefix will share a new one`);
  }
  return Buffer.from(stored, 'base64url');
}
