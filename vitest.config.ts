import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests start real servers on loopback; give them room on a 2-core CI box.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default'],
    // Removes the temp dirs each test file made (test/fixtures/temp-dirs.ts).
    setupFiles: ['test/setup/remove-temp-dirs.ts'],
    sequence: { hooks: 'stack' },
  },
});
