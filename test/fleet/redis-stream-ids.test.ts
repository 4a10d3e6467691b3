/**
 * The follower's log-reset judgement (src/fleet/redis-stream-ids.ts) on the shapes Redis answers
 * in: ids compared as numbers (a sequence past 2^53 included), XINFO STREAM in RESP2 and RESP3
 * form, and each way a log can stop being the one read so far.
 */
import { describe, expect, it } from 'vitest';
import { compareIds, parseStreamInfo, resetReason } from '../../src/fleet/redis-stream-ids.ts';

describe('stream ids and XINFO STREAM', () => {
  it('compares ids by milliseconds, then sequence, as numbers', () => {
    expect(compareIds('9-0', '10-0')).toBeLessThan(0);
    expect(compareIds('10-2', '10-10')).toBeLessThan(0);
    expect(compareIds('5-18446744073709551615', '5-18446744073709551614')).toBeGreaterThan(0);
    expect(compareIds('7-1', '7-1')).toBe(0);
  });

  it('reads last-generated-id and entries-added from RESP2 (flat array) and RESP3 (map) replies', () => {
    const flat = ['length', 0, 'radix-tree-keys', 1, 'last-generated-id', '1764000000123-4', 'max-deleted-entry-id', '0-0', 'entries-added', 12];
    expect(parseStreamInfo(flat)).toEqual({ lastGeneratedId: '1764000000123-4', entriesAdded: 12, maxDeletedId: '0-0' });
    expect(parseStreamInfo(new Map<string, unknown>([['last-generated-id', '3-0'], ['entries-added', 3]]))).toEqual({ lastGeneratedId: '3-0', entriesAdded: 3, maxDeletedId: undefined });
    expect(parseStreamInfo({ 'last-generated-id': '4-0' })).toEqual({ lastGeneratedId: '4-0', entriesAdded: undefined, maxDeletedId: undefined });
    expect(parseStreamInfo(['last-generated-id', '9-0', 'max-deleted-entry-id', '7-1'])).toMatchObject({ maxDeletedId: '7-1' });
  });

  it('names a reset: log gone after reading, ids below the last read, entries-added going down; else none', () => {
    expect(resetReason(undefined, '0-0', undefined)).toBeUndefined();
    expect(resetReason(undefined, '5-0', undefined)).toMatch(/the log is gone/);
    expect(resetReason({ lastGeneratedId: '4-9', entriesAdded: 1 }, '5-0', undefined)).toMatch(/below the last id read 5-0/);
    expect(resetReason({ lastGeneratedId: '6-0', entriesAdded: 2 }, '5-0', 7)).toMatch(/entries-added went back from 7 to 2/);
    expect(resetReason({ lastGeneratedId: '6-0', entriesAdded: 8 }, '5-0', 7)).toBeUndefined();
    expect(resetReason({ lastGeneratedId: '5-0', entriesAdded: undefined }, '5-0', 7)).toBeUndefined();
  });

  it('names records trimmed before they were read: a deleted id above the last id read (a re-probe)', () => {
    expect(resetReason({ lastGeneratedId: '9-0', entriesAdded: 9, maxDeletedId: '6-0' }, '5-0', 9)).toMatch(/after the last id read 5-0 were trimmed before this gate read them/);
    expect(resetReason({ lastGeneratedId: '9-0', entriesAdded: 9, maxDeletedId: '5-0' }, '5-0', 9)).toBeUndefined();
    expect(resetReason({ lastGeneratedId: '9-0', entriesAdded: 9, maxDeletedId: '0-0' }, '5-0', 9)).toBeUndefined();
    expect(resetReason({ lastGeneratedId: '9-0', entriesAdded: 9, maxDeletedId: '6-0' }, '0-0', 9)).toBeUndefined();
  });
});
