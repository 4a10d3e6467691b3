/**
 * Reading the live set (a sorted set of millions of members, maybe) a page at a time from the top,
 * so no single command holds Redis or the gate's event loop for long (a re-probe: one ZRANGE of
 * 3.5 M entries held a gate 9–28 s). The set changes while it is read:
 * - added above the read position: every unread member moves down a rank; read twice at worst;
 * - deleted at the bottom (the sweepers' expired entries): ranks from the top do not move;
 * - deleted above the read position, or moved below it (a broker's ZADD of an existing member with
 *   another score): every unread member moves up a rank, and a page that started where the last
 *   one ended would skip them (a re-probe: 500 members re-scored during a fresh gate's load made it
 *   miss 436 revocations for good).
 * So pages overlap, and each page must hold the previous page's last member with its score; when it
 * does not, the read goes on from just below the lowest of the previous page's last members that
 * is still where it was (ZREVRANK + ZSCORE), and when none is, the load is refused and done again.
 */

/** Members per page (about 10 ms of parsing). */
export const LOAD_PAGE = 4_000;
/** Consecutive pages share this many members, so a few shifts cost no extra round trip. */
export const LOAD_OVERLAP = 64;
/** How many of a page's last members may anchor the next page. */
const ANCHORS = 16;

/** A page: members lowest first, with their scores. */
export interface Page {
  readonly members: readonly string[];
  readonly scores: readonly number[];
}

export interface SetPages {
  /** ZRANGE key -(from+LOAD_PAGE) -(from+1) WITHSCORES: ranks from the top `from` on, lowest first. */
  page(from: number): Promise<Page>;
  /** For each member: its rank from the top and its score now (null, null when it is gone). */
  locate(members: readonly string[]): Promise<Array<[rank: number | null, score: number | null]>>;
  /** Each member, from the top down (maybe twice). */
  member(member: string): void;
  /** Between pages, with how many members were read so far. Throws to abandon the read. */
  between(read: number): Promise<void>;
}

/** The set moved too much under the read to know what was skipped: load it again. */
export class SetMovedError extends Error {}

/** Reads every member, starting from `first` (page(0), fetched beside the log's XINFO); returns how many were read. */
export async function readSetPages(first: Page, p: SetPages): Promise<number> {
  let page = first;
  let start = 0; // rank from the top of this page's first member
  for (;;) {
    const { members, scores } = page;
    const next = members.length === LOAD_PAGE ? p.page(start + LOAD_PAGE - LOAD_OVERLAP) : undefined;
    next?.catch(() => undefined); // awaited below; an error before then is not unhandled
    for (let i = members.length - 1; i >= 0; i--) p.member(members[i]!);
    if (next === undefined) return start + members.length;
    await p.between(start + members.length);
    let nextPage = await next;
    if (holds(nextPage, members[0]!, scores[0]!)) start += LOAD_PAGE - LOAD_OVERLAP;
    else {
      start = await resumeBelow(page, p);
      nextPage = await p.page(start);
    }
    page = nextPage;
  }
}

/** Whether `page` holds `member` with `score`. */
function holds(page: Page, member: string, score: number): boolean {
  // From the top: it is LOAD_OVERLAP - 1 members down unless something moved.
  for (let i = page.members.length - 1; i >= 0; i--) if (page.members[i] === member) return page.scores[i] === score;
  return false;
}

/** The rank just below the lowest of the page's last ANCHORS members that has not moved. */
async function resumeBelow(page: Page, p: SetPages): Promise<number> {
  const anchors = page.members.slice(0, ANCHORS);
  const where = await p.locate(anchors);
  for (let k = 0; k < anchors.length; k++) {
    const [rank, score] = where[k]!;
    if (rank !== null && score === page.scores[k]) return rank + 1;
  }
  throw new SetMovedError(`the live set changed under the load: the last ${anchors.length} members read were all deleted or moved`);
}

/** A score as node-redis gives it: a number (RESP3) or text (RESP2: `inf`, `-inf`, `1.5`). */
export function scoreOf(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return v;
  const s = String(v).toLowerCase();
  return s === 'inf' || s === '+inf' ? Infinity : s === '-inf' ? -Infinity : Number(s);
}

/** A ZRANGE … WITHSCORES reply as a Page: RESP3 gives `[[member, score], …]`, RESP2 `[member, score, …]`. */
export function pageOf(reply: unknown): Page {
  const members: string[] = [];
  const scores: number[] = [];
  const items = reply as unknown[];
  if (items.length > 0 && Array.isArray(items[0])) {
    for (const pair of items as unknown[][]) {
      members.push(String(pair[0]));
      scores.push(scoreOf(pair[1]) ?? NaN);
    }
  } else {
    for (let i = 0; i + 1 < items.length; i += 2) {
      members.push(String(items[i]));
      scores.push(scoreOf(items[i + 1]) ?? NaN);
    }
  }
  return { members, scores };
}
