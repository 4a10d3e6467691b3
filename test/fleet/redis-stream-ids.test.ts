/**
 * The follower's log-reset judgement (src/fleet/redis-stream-ids.ts) on the shapes Redis answers
 * in: ids compared as numbers (a sequence past 2^53 included), XINFO STREAM in RESP2 and RESP3
 * form, and each way a log can stop being the one read so far.
 */
import { describe, expect, it } from 'vitest';
import { compareIds, parseStreamInfo, resetReason, trimmedUnread } from '../../src/fleet/redis-stream-ids.ts';

describe('stream ids and XINFO STREAM', () => {
  it('compares ids by milliseconds, then sequence, as numbers', () => {
    expect(compareIds('9-0', '10-0')).toBeLessThan(0);
    expect(compareIds('10-2', '10-10')).toBeLessThan(0);
    expect(compareIds('5-18446744073709551615', '5-18446744073709551614')).toBeGreaterThan(0);
    expect(compareIds('7-1', '7-1')).toBe(0);
  });

  it('reads last-generated-id and entries-added from RESP2 (flat array) and RESP3 (map) replies', () => {
    const flat = ['length', 0, 'radix-tree-keys', 1, 'last-generated-id', '1764000000123-4', 'max-deleted-entry-id', '0-0', 'entries-added', 12, 'recorded-first-entry-id', '1764000000123-4'];
    expect(parseStreamInfo(flat)).toEqual({ lastGeneratedId: '1764000000123-4', entriesAdded: 12, length: 0, firstId: '1764000000123-4' });
    expect(parseStreamInfo(new Map<string, unknown>([['last-generated-id', '3-0'], ['entries-added', 3]]))).toEqual({ lastGeneratedId: '3-0', entriesAdded: 3, length: undefined, firstId: undefined });
    expect(parseStreamInfo({ 'last-generated-id': '4-0' })).toEqual({ lastGeneratedId: '4-0', entriesAdded: undefined, length: undefined, firstId: undefined });
  });

  it('names a reset: log gone after reading, ids below the last read, entries-added going down; else none', () => {
    expect(resetReason(undefined, '0-0', undefined)).toBeUndefined();
    expect(resetReason(undefined, '5-0', undefined)).toMatch(/the log is gone/);
    expect(resetReason({ lastGeneratedId: '4-9', entriesAdded: 1 }, '5-0', undefined)).toMatch(/below the last id read 5-0/);
    expect(resetReason({ lastGeneratedId: '6-0', entriesAdded: 2 }, '5-0', 7)).toMatch(/entries-added went back from 7 to 2/);
    expect(resetReason({ lastGeneratedId: '6-0', entriesAdded: 8 }, '5-0', 7)).toBeUndefined();
    expect(resetReason({ lastGeneratedId: '5-0', entriesAdded: undefined }, '5-0', 7)).toBeUndefined();
  });

  it('tells records trimmed before they were read from a quiet log, by counting (a re-probe)', () => {
    const at = (lastId: string, readSinceLoad: number) => ({ lastId, addedAtLoad: 10, readSinceLoad });
    const info = (firstId: string, length: number, entriesAdded: number) => ({ lastGeneratedId: '99-0', entriesAdded, length, firstId });
    // The oldest record left is at or below the last one read: nothing after it was trimmed.
    expect(trimmedUnread(info('5-0', 4, 14), at('6-0', 0))).toBeUndefined();
    // A quiet log trimmed empty, nothing added since the load: no gap.
    expect(trimmedUnread(info('0-0', 0, 10), at('6-0', 0))).toBeUndefined();
    // Five added since the load, two read, three left (all after the last read): no gap.
    expect(trimmedUnread(info('8-0', 3, 15), at('7-0', 2))).toBeUndefined();
    // Five added, one read, one left: three were trimmed unread.
    expect(trimmedUnread(info('9-0', 1, 15), at('6-0', 1))).toMatch(/3 records after id 6-0 were trimmed before this gate read them/);
    // Unknown counts (Redis < 7): no verdict.
    expect(trimmedUnread({ lastGeneratedId: '9-0', entriesAdded: undefined }, at('6-0', 0))).toBeUndefined();
  });

  it('tells a log recreated since the load by fewer records ever added than the gate saw added (a re-probe)', () => {
    const info = (entriesAdded: number) => ({ lastGeneratedId: '99-0', entriesAdded, length: 1, firstId: '99-0' });
    // Loaded at 10 records added, 1 read since: the log must have added at least 11.
    expect(trimmedUnread(info(10), { lastId: '98-0', addedAtLoad: 10, readSinceLoad: 1 })).toMatch(/entries-added 10 is below the 11 records this gate saw added \(the log was recreated\)/);
    expect(trimmedUnread(info(11), { lastId: '99-0', addedAtLoad: 10, readSinceLoad: 1 })).toBeUndefined();
  });
});
