/**
 * Stream ids and XINFO STREAM, for noticing that the change log a follower reads is no longer the
 * one it was reading (docs/fleet.md "Log resets"). XREAD only ever asks for ids above the last one
 * seen, so a log deleted, restored from an older copy, or recreated on a failed-over Redis with
 * lower ids would otherwise be read from forever without a single record coming back.
 */

/** Negative, zero or positive as `a` is below, equal to or above `b` (`ms-seq`; seq may exceed 2^53). */
export function compareIds(a: string, b: string): number {
  const [am, as] = split(a);
  const [bm, bs] = split(b);
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}

function split(id: string): [bigint, bigint] {
  const dash = id.indexOf('-');
  try {
    return dash === -1 ? [BigInt(id), 0n] : [BigInt(id.slice(0, dash)), BigInt(id.slice(dash + 1))];
  } catch {
    return [0n, 0n];
  }
}

/** What XINFO STREAM says about the log; `undefined` fields where this Redis does not report them. */
export interface StreamInfo {
  readonly lastGeneratedId: string;
  /** Redis 7+: every record ever added to this stream since it was created. */
  readonly entriesAdded: number | undefined;
  /** Records in the log now. */
  readonly length?: number | undefined;
  /** Redis 7+: the id of the oldest record still in the log. */
  readonly firstId?: string | undefined;
}

/** RESP2 gives a flat `[name, value, …]` array; RESP3 a map (a Map or a plain object in node-redis). */
export function parseStreamInfo(reply: unknown): StreamInfo {
  const get = (name: string): unknown => {
    if (Array.isArray(reply)) {
      for (let i = 0; i + 1 < reply.length; i += 2) if (reply[i] === name) return reply[i + 1];
      return undefined;
    }
    if (reply instanceof Map) return reply.get(name);
    return typeof reply === 'object' && reply !== null ? (reply as Record<string, unknown>)[name] : undefined;
  };
  const last = get('last-generated-id');
  const added = get('entries-added');
  const length = get('length');
  const first = get('recorded-first-entry-id');
  return {
    lastGeneratedId: typeof last === 'string' ? last : '0-0',
    entriesAdded: added === undefined || added === null ? undefined : Number(added),
    length: length === undefined || length === null ? undefined : Number(length),
    firstId: typeof first === 'string' ? first : undefined,
  };
}

/**
 * Why the log at `info` cannot be the one the follower read up to `lastId` (it last saw
 * `entriesAdded` records added), or undefined when it can. `info` undefined: the key is gone.
 */
export function resetReason(info: StreamInfo | undefined, lastId: string, seenAdded: number | undefined): string | undefined {
  if (info === undefined) return lastId === '0-0' ? undefined : `the log is gone (last id read ${lastId})`;
  if (compareIds(info.lastGeneratedId, lastId) < 0) return `the log's last id ${info.lastGeneratedId} is below the last id read ${lastId}`;
  if (seenAdded !== undefined && info.entriesAdded !== undefined && info.entriesAdded < seenAdded) {
    return `the log's entries-added went back from ${seenAdded} to ${info.entriesAdded} (recreated)`;
  }
  return undefined;
}

/** Where a follower stands: the last id read, and the records it has read since a load whose XINFO said `addedAtLoad`. */
export interface FollowPosition {
  readonly lastId: string;
  readonly addedAtLoad: number | undefined;
  readonly readSinceLoad: number;
}

/**
 * Why records the follower has not read were trimmed (the sweepers keep LOG_RETENTION_MS) before it
 * read them, or undefined. XREAD skips such a gap silently. Trimming removes from the oldest end, so
 * while the oldest record left is at or below the last id read, nothing after it is gone. When it is
 * above, every record left is unread, and the unread ones added since the load number
 * entries-added − added-at-load − read-since-load: more than the log holds means some were trimmed
 * (re-probes: a gate behind a burst, and one whose load outlasted the retention, lost revocations).
 */
export function trimmedUnread(info: StreamInfo, at: FollowPosition): string | undefined {
  const { entriesAdded, length, firstId } = info;
  if (entriesAdded === undefined || length === undefined || firstId === undefined || at.addedAtLoad === undefined) return undefined;
  // Fewer records ever added than this gate saw added: another log (deleted and recreated, maybe
  // during a load whose scan did not return the record it carried: a re-probe lost one that way).
  if (entriesAdded < at.addedAtLoad + at.readSinceLoad) return `the log's entries-added ${entriesAdded} is below the ${at.addedAtLoad + at.readSinceLoad} records this gate saw added (the log was recreated)`;
  if (length > 0 && compareIds(firstId, at.lastId) <= 0) return undefined;
  const unread = entriesAdded - at.addedAtLoad - at.readSinceLoad;
  if (unread <= length) return undefined;
  return `${unread - length} records after id ${at.lastId} were trimmed before this gate read them`;
}
