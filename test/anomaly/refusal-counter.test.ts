/**
 * The sliding-window refusal counter behind anomaly revocation (SPEC §12): exact window, one
 * crossing per burst, re-armed after a failed revocation, and memory bounded against a caller that
 * rotates tokens.
 */
import { describe, expect, it } from 'vitest';
import { RefusalCounter } from '../../src/anomaly/refusal-counter.ts';

describe('RefusalCounter', () => {
  it('case=crosses at the threshold within the window, exactly once per burst', () => {
    const c = new RefusalCounter(3, 1000, 100);
    expect(c.add('t', 0)).toEqual({ inWindow: 1, crossed: false });
    expect(c.add('t', 400)).toEqual({ inWindow: 2, crossed: false });
    expect(c.add('t', 1000)).toEqual({ inWindow: 3, crossed: true });
    expect(c.add('t', 1001)).toEqual({ inWindow: 3, crossed: false });
  });

  it('case=refusals older than the window no longer count (sliding, not fixed buckets)', () => {
    const c = new RefusalCounter(3, 1000, 100);
    c.add('t', 0);
    c.add('t', 900);
    // 0 has left the window at 1001: two in the window, not crossed.
    expect(c.add('t', 1001)).toEqual({ inWindow: 2, crossed: false });
    expect(c.add('t', 1500)).toEqual({ inWindow: 3, crossed: true });
  });

  it('case=tokens are counted apart', () => {
    const c = new RefusalCounter(2, 1000, 100);
    c.add('a', 0);
    expect(c.add('b', 1).crossed).toBe(false);
    expect(c.add('a', 2).crossed).toBe(true);
  });

  it('case=rearm after a failed revocation: the next refusal over the threshold crosses again', () => {
    const c = new RefusalCounter(2, 1000, 100);
    c.add('t', 0);
    expect(c.add('t', 1).crossed).toBe(true);
    expect(c.add('t', 2).crossed).toBe(false);
    c.rearm('t');
    expect(c.add('t', 3).crossed).toBe(true);
  });

  it('case=attack: 100 000 rotated tokens never hold more than max_tracked counters', () => {
    const c = new RefusalCounter(5, 60_000, 1000);
    for (let i = 0; i < 100_000; i++) c.add(`iss\ntoken-${i}`, i);
    expect(c.size).toBe(1000);
  });
});
