import { describe, expect, it } from 'vitest';
import { Doorkeeper } from '../../src/cache/doorkeeper.ts';

const key = (i: number): string => `k${i}-${'x'.repeat(40)}`.slice(0, 43);

describe('Doorkeeper', () => {
  it('answers false the first time and true the second', () => {
    const d = new Doorkeeper(100);
    expect(d.seenBefore(key(1))).toBe(false);
    expect(d.seenBefore(key(1))).toBe(true);
    expect(d.seenBefore(key(2))).toBe(false);
  });

  it('forgets everything after `window` new keys', () => {
    const d = new Doorkeeper(10);
    expect(d.seenBefore('first')).toBe(false);
    for (let i = 0; i < 10; i++) d.seenBefore(key(i));
    expect(d.seenBefore('first')).toBe(false);
    expect(d.seenBefore('first')).toBe(true);
  });

  it('keeps false positives near 0.5 % with the window full', () => {
    // 4,096 keys in 65,536 bits, three bits each: (1 - e^(-3/16))^3 ≈ 0.5 %.
    const window = 4_096;
    const d = new Doorkeeper(window);
    let early = 0;
    for (let i = 0; i < window; i++) if (d.seenBefore(key(i))) early++;
    expect(early).toBeLessThan(40); // false positives while filling: fewer than 1 %
    let fp = 0;
    const probes = 4_000;
    // Each probe adds itself, so the filter's window leaves room for the probes: none of them clears it.
    const full = new Doorkeeper(window + probes);
    for (let i = 0; i < window; i++) full.seenBefore(key(i));
    for (let i = 0; i < probes; i++) if (full.seenBefore(`probe-${i}-${'y'.repeat(30)}`)) fp++;
    expect(fp / probes).toBeLessThan(0.015);
  });
});
