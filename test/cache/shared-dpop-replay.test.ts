/**
 * Proof single use across cluster workers (src/cache/shared-dpop-replay.ts): two workers' guards
 * over stand-in IPC channels to one primary cache. The run with real workers is in
 * test/cli/serve.test.ts.
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DpopReplayCache } from '../../src/cache/dpop-replay.ts';
import { answerReplay, SharedReplayGuard, type ReplayChannel, type ReplayRequest } from '../../src/cache/shared-dpop-replay.ts';

/** A worker's channel whose messages the primary answers after `delayMs` (or never). */
class Channel extends EventEmitter implements ReplayChannel {
  sent = 0;
  readonly primary: DpopReplayCache | undefined;
  readonly delayMs: number;
  constructor(primary: DpopReplayCache | undefined, delayMs = 0) {
    super();
    this.primary = primary;
    this.delayMs = delayMs;
  }
  send(m: ReplayRequest): void {
    this.sent++;
    const cache = this.primary;
    if (cache === undefined) return; // a primary that never answers
    setTimeout(() => this.emit('message', answerReplay(cache, m)), this.delayMs);
  }
}

const NOW = 1_764_000_000_000;

afterEach(() => {
  vi.useRealTimers();
});

describe('SharedReplayGuard', () => {
  it('a jti is fresh once across workers: the second worker is told it is a replay', async () => {
    const primary = new DpopReplayCache(100);
    const w1 = new SharedReplayGuard(new Channel(primary), 100);
    const w2 = new SharedReplayGuard(new Channel(primary), 100);
    expect(await w1.add('p-1', NOW + 60_000, NOW)).toBe('fresh');
    expect(await w2.add('p-1', NOW + 60_000, NOW)).toBe('replay');
    expect(await w2.add('p-2', NOW + 60_000, NOW)).toBe('fresh');
    expect(primary.size).toBe(2);
  });

  it('even when both ask at once (the primary decides in one step)', async () => {
    const primary = new DpopReplayCache(100);
    const w1 = new SharedReplayGuard(new Channel(primary, 5), 100);
    const w2 = new SharedReplayGuard(new Channel(primary, 5), 100);
    const outcomes = await Promise.all([w1.add('p-3', NOW + 60_000, NOW), w2.add('p-3', NOW + 60_000, NOW)]);
    expect(outcomes.sort()).toEqual(['fresh', 'replay']);
  });

  it('a replay back at the same worker is refused without asking; has() sees what this worker recorded', async () => {
    const ch = new Channel(new DpopReplayCache(100));
    const w = new SharedReplayGuard(ch, 100);
    expect(await w.add('p-4', NOW + 60_000, NOW)).toBe('fresh');
    expect(w.has('p-4', NOW)).toBe(true);
    expect(w.add('p-4', NOW + 60_000, NOW)).toBe('replay');
    expect(ch.sent).toBe(1);
  });

  it('keys proofs by client key and jti, in the primary and in a worker: another client\'s jti is another proof (a review)', async () => {
    const primary = new DpopReplayCache(100);
    const w1 = new SharedReplayGuard(new Channel(primary), 100);
    const w2 = new SharedReplayGuard(new Channel(primary), 100);
    expect(await w1.add('shared-1', NOW + 60_000, NOW, 'jkt-B')).toBe('fresh');
    expect(w1.has('shared-1', NOW, 'jkt-A')).toBe(false);
    expect(await w1.add('shared-1', NOW + 60_000, NOW, 'jkt-A')).toBe('fresh');
    expect(await w2.add('shared-1', NOW + 60_000, NOW, 'jkt-A')).toBe('replay');
    const local = new DpopReplayCache(10);
    expect(local.add('j', NOW + 1000, NOW, 'k1')).toBe('fresh');
    expect(local.add('j', NOW + 1000, NOW, 'k2')).toBe('fresh');
    expect(local.add('j', NOW + 1000, NOW, 'k1')).toBe('replay');
  });

  it('a proof the primary could not record (full) is not burned: sent again once there is room, it is fresh (a re-probe)', async () => {
    const primary = new DpopReplayCache(1);
    const w = new SharedReplayGuard(new Channel(primary), 100);
    expect(await w.add('fills', NOW + 1_000, NOW, 'k')).toBe('fresh');
    expect(await w.add('later', NOW + 60_000, NOW, 'k')).toBe('full');
    expect(w.has('later', NOW, 'k')).toBe(false);
    // The first entry has expired: the same proof again is recorded.
    expect(await w.add('later', NOW + 60_000, NOW + 2_000, 'k')).toBe('fresh');
    expect(w.has('later', NOW + 2_000, 'k')).toBe(true);
  });

  it('a primary that does not answer within a second → refused as not recordable, never accepted', async () => {
    vi.useFakeTimers();
    const w = new SharedReplayGuard(new Channel(undefined), 100);
    const p = w.add('p-5', NOW + 60_000, NOW);
    await vi.advanceTimersByTimeAsync(1001);
    expect(await p).toBe('full');
  });

  it('a channel that throws on send (the primary is gone) → refused', async () => {
    const ch = new Channel(undefined);
    ch.send = () => {
      throw new Error('channel closed');
    };
    expect(await new SharedReplayGuard(ch, 100).add('p-6', NOW + 60_000, NOW)).toBe('full');
  });
});
