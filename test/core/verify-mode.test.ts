import { describe, expect, it } from 'vitest';
import { chooseVerifyMode } from '../../src/core/verify-mode.ts';

describe('where a cache miss verifies (issue 20: batched on the event loop of a busy core, the pool when a core is spare)', () => {
  it.each([
    [1, 1, 'batch'],
    [2, 1, 'pool'],
    [2, 2, 'batch'],
    [2, 'auto', 'batch'],
    [4, 2, 'pool'],
    [4, 'auto', 'batch'],
    [1, 4, 'batch'],
  ] as const)('%s cores, workers %s → %s', (cores, workers, mode) => {
    expect(chooseVerifyMode(cores, workers)).toBe(mode);
  });
});
