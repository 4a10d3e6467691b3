/**
 * Token Status List (SPEC §10, draft-ietf-oauth-status-list): what the decision core knows of it.
 * The core never fetches: it asks an injected {@link StatusListLookup} for a handle per list URI when a
 * token is first verified, keeps `{ list, idx }` on the cached VerifiedToken, and on every request asks
 * the handle for the status at `idx` — a bit lookup in memory (src/status-list/list-entry.ts). Fetching,
 * verifying and refreshing lists lives outside core/ (src/status-list/).
 */
import type { Clock } from './clock.ts';
import { deny, unavailable, type Deny, type DenyReason, type StatusListUnavailableReason, type Unavailable, type UnavailableReason } from './decision.ts';
import { REASONS } from './reasons.ts';
import type { StatusListFailure, StatusListLookup, StatusRef } from './status-ref.ts';
import type { VerifiedToken } from './verified-token.ts';

export type { StatusListFailure, StatusListHandle, StatusListLookup, StatusRef } from './status-ref.ts';

/**
 * The token's `status.status_list` claim (draft §6.1): `{ idx: non-negative integer, uri: string }`.
 * Without a lookup (the issuer has no `status_list` block) the claim is not acted on (docs/status-list.md).
 */
export function checkStatusClaim(status: unknown, lookup: StatusListLookup | undefined): StatusRef | undefined | DenyReason {
  if (lookup === undefined) return undefined;
  if (status === undefined) return lookup.required ? 'status_missing' : undefined;
  if (typeof status !== 'object' || status === null || Array.isArray(status)) return 'status_claim_invalid';
  // Draft §6.1: the claim MUST name at least one status mechanism (one we do not know is fine: an
  // extension point); `{}` names none and is malformed like `[]` (a probe saw it let through).
  if (Object.keys(status).length === 0) return 'status_claim_invalid';
  const sl = (status as { status_list?: unknown }).status_list;
  if (sl === undefined) return lookup.required ? 'status_missing' : undefined;
  if (typeof sl !== 'object' || sl === null || Array.isArray(sl)) return 'status_claim_invalid';
  const { idx, uri } = sl as { idx?: unknown; uri?: unknown };
  if (typeof idx !== 'number' || !Number.isSafeInteger(idx) || idx < 0) return 'status_claim_invalid';
  if (typeof uri !== 'string' || uri.length === 0 || uri.length > 2048) return 'status_claim_invalid';
  const list = lookup.handle(uri);
  if (typeof list === 'string') return list;
  return Object.freeze({ list, idx });
}

/** Status value → refusal (draft §7.1: 0x00 VALID, 0x01 INVALID, 0x02 SUSPENDED; anything else is not VALID). */
export function statusRefusal(value: number): DenyReason | undefined {
  if (value === 0) return undefined;
  if (value === 1) return 'revoked';
  if (value === 2) return 'suspended';
  return 'status_not_valid';
}

/** A refusal from the token's status, with the token and path for the audit line. */
function refusal(reason: StatusListFailure, path: string, token: VerifiedToken): Deny | Unavailable {
  return isUnavailable(reason) ? unavailable(reason, path, token) : deny(reason, path, token);
}

function isUnavailable(r: StatusListFailure): r is UnavailableReason | StatusListUnavailableReason {
  return REASONS[r].status === 503;
}

/**
 * The token's status on this request: undefined when VALID, else its refusal. Synchronous while the
 * list is held (every request after the first); a promise only while the list's first fetch runs,
 * waiting at most the issuer's `timeout` (then 503 `status_list_timeout`).
 */
export function statusDecision(ref: StatusRef, nowMs: number, clock: Clock, path: string, token: VerifiedToken): Deny | Unavailable | undefined | Promise<Deny | Unavailable | undefined> {
  const v = ref.list.status(ref.idx, nowMs);
  if (v === 0) return undefined;
  if (v !== 'pending') return typeof v === 'number' ? deny(statusRefusal(v)!, path, token) : refusal(v, path, token);
  return ref.list.settled().then(() => {
    const after = ref.list.status(ref.idx, clock.nowMs());
    if (after === 0) return undefined;
    if (after === 'pending') return unavailable('status_list_timeout', path, token);
    return typeof after === 'number' ? deny(statusRefusal(after)!, path, token) : refusal(after, path, token);
  });
}
