/**
 * The shapes the decision core and the status-list cache share (SPEC §10), kept apart from the logic
 * in status-list.ts so the cached VerifiedToken can name them without an import cycle.
 */
import type { Reason } from './reasons.ts';

/** Why a list gives no status: a 401 (the list failed verification) or a 503 (no fresh list). */
export type StatusListFailure = Exclude<Reason, 'granted' | 'public' | 'upstream_unreachable' | 'upstream_tls' | 'upstream_timeout'>;

/** One published list, as the core sees it. */
export interface StatusListHandle {
  readonly uri: string;
  /**
   * The status value at `idx` (0 VALID, 1 INVALID, 2 SUSPENDED, …), or why there is none:
   * `'pending'` while the first fetch of the list is under way (the caller waits with {@link settled}),
   * else a reason. Must not allocate or await: it runs for every request of a cached token.
   */
  status(idx: number, nowMs: number): number | 'pending' | StatusListFailure;
  /** Resolves when the first fetch has settled or the issuer's `timeout` has passed, whichever is first. */
  settled(): Promise<void>;
}

/** The status lists of one issuer: `allowed_uris`, `required`, and the handles. */
export interface StatusListLookup {
  /** A token without a status claim is refused (`required: true`). */
  readonly required: boolean;
  /** The handle for `uri`, or `status_uri_not_allowed` when it lies outside `allowed_uris` (nothing is fetched). */
  handle(uri: string): StatusListHandle | 'status_uri_not_allowed';
}

/** What a verified token carries: the list and its index there. */
export interface StatusRef {
  readonly list: StatusListHandle;
  readonly idx: number;
}

