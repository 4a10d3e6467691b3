/**
 * Whether Redis may evict the keys a fleet relies on (docs/fleet.md "Memory": set maxmemory-policy
 * noeviction). A probe set `maxmemory` on a live fleet: under `volatile-lru` the DPoP replay records
 * (keys with a TTL) were evicted and a used proof was accepted again at another gate; under an
 * `allkeys-*` policy the revocation set went too, and a gate started then answered 200 for revoked
 * tokens until the running gates wrote them back. No gate noticed. Read from `INFO memory`.
 */

/** What this gate keeps in Redis. */
export interface FleetUses {
  readonly revocations: boolean;
  readonly dpopReplay: boolean;
  readonly nonces: boolean;
  /** Anomaly refusal counts (keys with a TTL) kept in Redis: anomaly with revocation.redis. */
  readonly anomalyCounts: boolean;
}

/** The risk in words for /readyz, or undefined when nothing this gate keeps can be evicted. */
export function evictionRisk(info: string, uses: FleetUses): string | undefined {
  const maxmemory = /^maxmemory:(\d+)\r?$/m.exec(info)?.[1];
  const policy = /^maxmemory_policy:([\w-]+)\r?$/m.exec(info)?.[1];
  // No limit: Redis never evicts, whatever the policy says (its default is noeviction with maxmemory 0).
  if (maxmemory === undefined || policy === undefined || Number(maxmemory) === 0 || policy === 'noeviction') return undefined;
  const lost: string[] = [];
  // volatile-* evicts only keys with a TTL: the replay records; allkeys-* evicts anything.
  if (uses.dpopReplay) lost.push('DPoP replay records (a used proof is accepted again at another gate)');
  if (uses.anomalyCounts) lost.push('anomaly refusal counts (a probing token is never revoked)');
  if (policy.startsWith('allkeys-')) {
    if (uses.revocations) lost.push('the revocation set and log (a gate started then allows revoked tokens)');
    if (uses.nonces) lost.push('the fleet DPoP nonce key');
  }
  if (lost.length === 0) return undefined;
  return `maxmemory-policy ${policy} with maxmemory ${maxmemory}: Redis may evict ${lost.join(' and ')}; set maxmemory-policy noeviction (docs/fleet.md "Memory")`;
}
