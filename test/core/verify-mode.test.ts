import { describe, expect, it } from 'vitest';
import { chooseVerifyMode } from '../../src/core/verify-mode.ts';

describe('where a cache miss verifies (issue 20: sync on a busy core, the pool when a core is spare)', () => {
  it.each([
    [1, 1, 'sync'],
    [2, 1, 'pool'],
    [2, 2, 'sync'],
    [2, 'auto', 'sync'],
    [4, 2, 'pool'],
    [4, 'auto', 'sync'],
    [1, 4, 'sync'],
  ] as const)('%s cores, workers %s → %s', (cores, workers, mode) => {
    expect(chooseVerifyMode(cores, workers)).toBe(mode);
  });
});
