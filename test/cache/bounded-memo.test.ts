import { describe, expect, it } from 'vitest';
import { BoundedMemo } from '../../src/cache/bounded-memo.ts';

describe('BoundedMemo', () => {
  it('returns what was set, and empties itself before it would grow past its bound', () => {
    const m = new BoundedMemo<string, number>(3);
    expect(m.set('a', 1)).toBe(1);
    m.set('b', 2);
    m.set('c', 3);
    expect([m.get('a'), m.get('c'), m.get('d'), m.size]).toEqual([1, 3, undefined, 3]);
    m.set('d', 4); // full: emptied, then d
    expect([m.get('a'), m.get('d'), m.size]).toEqual([undefined, 4, 1]);
    m.set('d', 5); // a known key still counts against the bound only once
    expect([m.get('d'), m.size]).toEqual([5, 1]);
    for (let i = 0; i < 100; i++) m.set(`k${i}`, i);
    expect(m.size).toBeLessThanOrEqual(3);
  });
});
