/**
 * Long walks over revocation lists (millions of entries: a reload's parse, building an index,
 * merging what a gate held) done in slices, giving the event loop a turn every SLICE_MS so requests
 * keep being answered with the list in force meanwhile (a re-probe: one load of 3.5 M entries held
 * a gate's event loop 9–28 s).
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

export const SLICE_MS = 10;

/** Calls `fn` on each item; every SLICE_MS (checked every 1,024 items) waits one event-loop turn. */
export async function eachSliced<T>(items: Iterable<T>, fn: (item: T) => void): Promise<void> {
  let since = performance.now();
  let n = 0;
  for (const item of items) {
    fn(item);
    if ((++n & 1023) === 0 && performance.now() - since >= SLICE_MS) {
      await nextTurn();
      since = performance.now();
    }
  }
}
