/**
 * A revocation list of 1,000,000 entries loads in bounded time and memory, and lookups stay O(1)
 * (issue 4). Measured by bench/revocation-load.ts through the production load path; the bounds
 * here are generous so a slow CI box passes while a regression to something quadratic or linear
 * does not. Run the bench itself for the numbers: `npm exec -- node bench/revocation-load.ts`.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { measureFileLoad, measureLookupScaling, writeFeed } from '../../bench/revocation-load.ts';
import { tempDir } from '../fixtures/keys.ts';

const MB = 1024 * 1024;

describe('1,000,000 revocation entries', () => {
  it('load in < 20 s of CPU with < 1 GB of heap, and every kind is found', { timeout: 120_000 }, async () => {
    const dir = await tempDir('jitgate-1m-');
    try {
      const file = join(dir, 'revoked.jsonl');
      await writeFeed(file, 1_000_000);
      const m = await measureFileLoad(file, 1_000_000);
      console.log(
        `[1M load] ${(m.fileBytes / MB).toFixed(1)} MB feed loaded in ${(m.loadMs / 1000).toFixed(2)} s (${(m.cpuMs / 1000).toFixed(2)} s CPU); heap retained ${(m.heapGrowth / MB).toFixed(1)} MB, peak +${(m.peakHeapGrowth / MB).toFixed(1)} MB, RSS +${(m.rssGrowth / MB).toFixed(1)} MB`,
      );
      // CPU, not wall time: on a box shared with other work the wall clock measures the neighbours.
      expect(m.cpuMs).toBeLessThan(20_000);
      expect(m.peakHeapGrowth).toBeLessThan(1024 * MB);
      expect(m.heapGrowth).toBeLessThan(1024 * MB);
      const now = Math.floor(Date.now() / 1000);
      expect(m.index.isRevoked('none', 'spiffe://prod/workload-20', now - 3600, undefined)).toBe(true);
      expect(m.index.isRevoked('none', 'nobody', now, 'task-l-21')).toBe(true);
      expect(m.index.isRevoked('none', 'nobody', now, undefined)).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('look up in O(1): 100k lookups cost about the same at 100k and at 1M entries', { timeout: 120_000 }, () => {
    const [k1, k100, m1] = measureLookupScaling([1_000, 100_000, 1_000_000]);
    console.log(
      `[1M lookups] 100k lookups: ${k1!.ms.toFixed(2)} ms at 1k, ${k100!.ms.toFixed(2)} ms at 100k, ${m1!.ms.toFixed(2)} ms at 1M entries; 1k→1M ${(m1!.ms / k1!.ms).toFixed(1)}x, 100k→1M ${(m1!.ms / k100!.ms).toFixed(1)}x`,
    );
    // 1k fits in the CPU cache and 1M does not, so some growth is memory latency (typically 10-15x here);
    // a linear scan would be 1000x. Other test files share the CPU, hence the slack.
    expect(m1!.ms / k1!.ms).toBeLessThan(100);
    // Both out of cache: 10x the entries must not cost anywhere near 10x.
    expect(m1!.ms / k100!.ms).toBeLessThan(6);
  });
});
