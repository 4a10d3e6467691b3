/**
 * Long walks over revocation lists (millions of entries: a reload's parse, building an index,
 * merging what a gate held) done in slices, giving the event loop a turn every SLICE_MS so requests
 * keep being answered with the list in force meanwhile (a re-probe: one load of 3.5 M entries held
 * a gate's event loop 9–28 s).
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

export const SLICE_MS = 10;

/**
 * Calls `fn` on each item; every SLICE_MS (checked every 64 items: a feed's lines may be large) waits
 * one event-loop turn, then `between` when given (a load reads the log there).
 */
export async function eachSliced<T>(items: Iterable<T>, fn: (item: T) => void, between?: () => Promise<void>): Promise<void> {
  let since = performance.now();
  let n = 0;
  for (const item of items) {
    fn(item);
    if ((++n & 63) === 0 && performance.now() - since >= SLICE_MS) {
      await nextTurn();
      if (between !== undefined) await between();
      since = performance.now();
    }
  }
}
