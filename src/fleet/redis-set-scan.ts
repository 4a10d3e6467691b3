/**
 * Reading the live set (millions of members, maybe) in pieces, so no single command holds Redis or
 * the gate's event loop for long (a re-probe: one ZRANGE of 3.5 M entries held a gate 9–28 s).
 *
 * ZSCAN, because the set changes while it is read, and Redis guarantees that a full SCAN returns
 * every member present from its start to its end, whatever is added, deleted or re-scored meanwhile.
 * Pages by rank cannot promise that: members deleted above the read position, or moved across it,
 * shift the rest (re-probes of a ranked reader made fresh gates skip thousands of revocations under
 * a broker re-scoring or deleting members, with overlaps and anchors each beaten in turn). What is
 * written during a load the documented way (set and log together) is read from the log.
 * A member may come twice (SCAN's own rule); adding an entry twice changes nothing.
 */

/** Members asked for per ZSCAN (a hint to Redis; about 10 ms of parsing). */
export const SCAN_COUNT = 4_000;

/** One ZSCAN answer: the next cursor ('0' at the end) and the members (scores dropped). */
export interface ScanPage {
  readonly cursor: string;
  readonly members: readonly string[];
}

export interface SetScan {
  scan(cursor: string): Promise<ScanPage>;
  member(member: string): void;
  /** Between pages, with how many members were read so far. Throws to abandon the read. */
  between(read: number): Promise<void>;
}

/** Reads every member, starting from `first` (the cursor-0 page, fetched beside the log's XINFO); returns how many were read. */
export async function scanSet(first: ScanPage, s: SetScan): Promise<number> {
  let page = first;
  let read = 0;
  for (;;) {
    // The next page is asked for before this one is parsed: Redis works while the gate parses.
    const next = page.cursor === '0' ? undefined : s.scan(page.cursor);
    next?.catch(() => undefined); // awaited below; an error before then is not unhandled
    for (const m of page.members) s.member(m);
    read += page.members.length;
    if (next === undefined) return read;
    await s.between(read);
    page = await next;
  }
}

/** A ZSCAN reply as node-redis gives it: `[cursor, [member, score, …]]` (RESP2 and RESP3), or pairs. */
export function scanPageOf(reply: unknown): ScanPage {
  const [cursor, items] = reply as [unknown, unknown[]];
  const members: string[] = [];
  if (items.length > 0 && Array.isArray(items[0])) for (const pair of items as unknown[][]) members.push(String(pair[0]));
  else for (let i = 0; i + 1 < items.length; i += 2) members.push(String(items[i]));
  return { cursor: String(cursor), members };
}
