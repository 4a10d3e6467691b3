/**
 * StallGuard (src/fleet/stall-guard.ts) on its own, with short bounds: a gap in its ticks longer than
 * the stall bound — the event loop held here by a busy wait, as a frozen process holds it — makes it
 * behind, noticed by the question itself before any timer runs; only a read sent after the stall clears
 * it, and the catch-up bound ends it without one. A loop that runs normally never reports a stall.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { StallGuard } from '../../src/fleet/stall-guard.ts';

const hold = (ms: number): void => {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // the event loop stands still
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const guards: StallGuard[] = [];
const guard = (bounds: { stallMs: number; catchUpMs: number }): StallGuard => {
  const g = new StallGuard(bounds);
  g.start();
  guards.push(g);
  return g;
};
afterEach(() => {
  for (const g of guards.splice(0)) g.stop();
});

describe('StallGuard', () => {
  it('a loop that keeps running is never behind', async () => {
    const g = guard({ stallMs: 1_500, catchUpMs: 5_000 }); // the production bound
    for (let i = 0; i < 10; i++) {
      await sleep(50);
      expect(g.behind).toBe(false);
    }
  });

  it('a stall is noticed by the question itself, and said once; a read sent before it does not clear it, one sent after does', async () => {
    const said: number[] = [];
    const g = new StallGuard({ stallMs: 300, catchUpMs: 5_000, onStall: (ms) => said.push(ms) });
    g.start();
    guards.push(g);
    await sleep(20);
    const sentBefore = performance.now();
    hold(600);
    expect(g.behind).toBe(true); // no timer has run since the stall
    expect(g.behind).toBe(true);
    expect(said).toHaveLength(1);
    expect(said[0]).toBeGreaterThanOrEqual(600);
    g.synced(sentBefore);
    expect(g.behind).toBe(true);
    g.synced(performance.now());
    expect(g.behind).toBe(false);
  });

  // On a clock the test moves: with these short bounds on real time, a full suite beside other load starved this
  // process past 300 ms again during the wait, a second stall that kept it behind (a CI-like run, 2026-12-08).
  // Time passes in steps under the stall bound with a real tick after each (a 210 ms sleep outlasts the 200 ms
  // interval, and libuv runs due timers in order), so however late the ticks run, only the jump is a stall.
  it('without an answered read, being behind ends after the catch-up bound (Redis may be away: max_stale governs)', async () => {
    let t = 0;
    const said: number[] = [];
    const g = new StallGuard({ stallMs: 300, catchUpMs: 1_500, onStall: (ms) => said.push(ms), now: () => t });
    g.start();
    guards.push(g);
    const pass = async (ms: number): Promise<void> => {
      for (let left = ms; left > 0; left -= 250) {
        t += Math.min(250, left);
        await sleep(210);
      }
    };
    await pass(500);
    expect(g.behind).toBe(false);
    t += 600; // the stall: no tick ran across it
    expect(g.behind).toBe(true);
    await pass(1_500); // 1,500 since the stall was noticed: not past the bound
    expect(g.behind).toBe(true);
    await pass(1);
    expect(g.behind).toBe(false);
    expect(said).toEqual([600]);
  });

  it('stopped, it answers false, even right after a stall it saw', async () => {
    const g = guard({ stallMs: 300, catchUpMs: 5_000 });
    await sleep(20);
    hold(600);
    expect(g.behind).toBe(true);
    g.stop();
    expect(g.behind).toBe(false);
    // Never started: nothing to be behind of.
    const idle = new StallGuard({ stallMs: 1, catchUpMs: 5_000 });
    hold(5);
    expect(idle.behind).toBe(false);
  });
});
