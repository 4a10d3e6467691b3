/**
 * A log destination given up at shutdown (flushWithin destroys it after its wait) must not throw at
 * the lines that still come: a drain's last requests, a timer. pino's SonicBoom throws "SonicBoom
 * destroyed" on every write once destroyed, and `log.destination: stderr` used it bare (stdout and
 * files go through LineBatch, which dropped them), so a late line ended the process with an uncaught
 * exception instead of the exit code shutdown meant. Every kind of destination now drops and counts.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDestination, createLogger, droppedLogLines } from '../../src/observability/logger.ts';
import { tempDir } from '../fixtures/temp-dirs.ts';

describe('a destroyed log destination', () => {
  it.each(['stderr', 'stdout', 'file'])('%s: later lines are dropped and counted, never thrown', async (kind) => {
    const destination = kind === 'file' ? join(await tempDir('jitgate-destroyed-'), 'gate.log') : kind;
    const stream = createDestination(destination) as ReturnType<typeof createDestination> & { destroy(): void; flush?(cb: (err?: Error | null) => void): void };
    const log = createLogger({ level: 'info', destination }, stream);
    if (kind === 'file') {
      // A file opens asynchronously: a flush that has written a line says it is open.
      log.info('before the give-up');
      await new Promise<void>((r, j) => stream.flush!((err?: Error | null) => (err ? j(err) : r())));
    }
    stream.destroy();
    const before = droppedLogLines();
    expect(() => {
      log.info('after the give-up');
      log.info({ big: 'x'.repeat(70_000) }, 'a line larger than a chunk');
      log.error({ err: new Error('late') }, 'a late failure');
    }).not.toThrow();
    // LineBatch holds lines until its chunk fills or a flush: pushing it must not throw either.
    expect(() => log.flush()).not.toThrow();
    expect(droppedLogLines() - before).toBe(3);
  });
});
