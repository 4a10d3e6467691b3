/**
 * Heap bytes one call allocates: the used heap before and after 200 calls, over the tries with no
 * collection in between (the heap shrank). Unlike time, this does not move with the machine's load.
 */
import { getHeapStatistics } from 'node:v8';

export function allocatedPerCall(f: () => unknown): number {
  let sum = 0;
  let calls = 0;
  for (let t = 0; t < 50; t++) {
    const h0 = getHeapStatistics().used_heap_size;
    for (let i = 0; i < 200; i++) f();
    const h1 = getHeapStatistics().used_heap_size;
    if (h1 >= h0) {
      sum += h1 - h0;
      calls += 200;
    }
  }
  // The mean, not the least: a chunk made every few hundred calls belongs to the cost too.
  return calls === 0 ? Number.NaN : sum / calls;
}
