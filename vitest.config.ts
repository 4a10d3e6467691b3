import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests start real servers on loopback; give them room on a 2-core CI box.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default'],
    // After each file: kill the child processes it left running, then remove the temp dirs it made
    // (test/fixtures/temp-dirs.ts). Hooks unwind as a stack, so the last file listed runs first.
    setupFiles: ['test/setup/remove-temp-dirs.ts', 'test/setup/reap-children.ts'],
    sequence: { hooks: 'stack' },
  },
});
