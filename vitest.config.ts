import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests start real servers on loopback; give them room on a 2-core CI box.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Most of a file's time is spent waiting on real servers and timers, not on a core: vitest's default
    // (one worker per core but one) ran the suite one file at a time on the 2-core CI machine (868 s;
    // two workers: 543 s, 2026-12-07). Every test takes free ports and its own temp dirs, so files may overlap.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    reporters: ['default'],
    // After each file: kill the child processes it left running, then remove the temp dirs it made
    // (test/fixtures/temp-dirs.ts). Hooks unwind as a stack, so the last file listed runs first.
    setupFiles: ['test/setup/remove-temp-dirs.ts', 'test/setup/reap-children.ts'],
    sequence: { hooks: 'stack' },
  },
});
