/**
 * Refusal counting for a cluster (src/anomaly/primary-counter.ts): workers ask the primary, which
 * keeps one count per token for all of them. The IPC channel is replaced by an in-memory one that
 * delivers asynchronously, as process.send does.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { answerAnomalyCount, PrimaryRefusalCounter, type AnomalyCountRequest, type AnomalyRearmRequest, type CountChannel } from '../../src/anomaly/primary-counter.ts';
import { RefusalCounter, TRIP_HOLD_MS } from '../../src/anomaly/refusal-counter.ts';

/** A worker's channel to a primary holding `counter`; `silent` drops every request (a stuck primary). */
function workerChannel(counter: RefusalCounter, silent = false): CountChannel {
  const listeners: ((m: unknown) => void)[] = [];
  return {
    send(m: AnomalyCountRequest | AnomalyRearmRequest) {
      if (silent) return;
      setImmediate(() => {
        if (m.type === 'jitgate:anomaly-rearm') return counter.rearm(m.key);
        const answer = answerAnomalyCount(counter, m);
        for (const l of listeners) l(answer);
      });
    },
    on(_event, listener) {
      listeners.push(listener);
    },
  };
}

/** A worker's channel to a primary that is stalled (SIGSTOP, a blocked loop) until `resume`, which counts what queued up meanwhile. */
function stalledChannel(counter: RefusalCounter): { channel: CountChannel; resume(): void } {
  const queued: (AnomalyCountRequest | AnomalyRearmRequest)[] = [];
  const listeners: ((m: unknown) => void)[] = [];
  let stalled = true;
  const handle = (m: AnomalyCountRequest | AnomalyRearmRequest): void => {
    if (m.type === 'jitgate:anomaly-rearm') return counter.rearm(m.key);
    const answer = answerAnomalyCount(counter, m);
    for (const l of listeners) l(answer);
  };
  return {
    channel: {
      send: (m: AnomalyCountRequest | AnomalyRearmRequest) => void (stalled ? queued.push(m) : setImmediate(() => handle(m))),
      on: (_event, listener) => void listeners.push(listener),
    },
    resume() {
      stalled = false;
      for (const m of queued.splice(0)) handle(m);
    },
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('counting at the cluster primary', () => {
  it('refusals through two workers add up: the threshold-th crosses, once; after a failed revocation the next one crosses again', async () => {
    const shared = new RefusalCounter(3, 60_000, 100);
    const [w1, w2] = [new PrimaryRefusalCounter(workerChannel(shared)), new PrimaryRefusalCounter(workerChannel(shared))];
    const seen = [await w1.add('t', 1_000), await w2.add('t', 1_001), await w1.add('t', 1_002), await w2.add('t', 1_003)];
    expect(seen).toEqual([
      { inWindow: 1, crossed: false },
      { inWindow: 2, crossed: false },
      { inWindow: 3, crossed: true },
      { inWindow: 3, crossed: false },
    ]);
    w2.rearm('t');
    expect(await w1.add('t', 1_004)).toEqual({ inWindow: 3, crossed: true });
    // Another token has its own count.
    expect(await w2.add('u', 1_005)).toEqual({ inWindow: 1, crossed: false });
  });

  it('answers are matched to their requests when several are in flight', async () => {
    const shared = new RefusalCounter(2, 60_000, 100);
    const w = new PrimaryRefusalCounter(workerChannel(shared));
    const all = await Promise.all([w.add('a', 1), w.add('b', 2), w.add('a', 3)]);
    expect(all).toEqual([
      { inWindow: 1, crossed: false },
      { inWindow: 1, crossed: false },
      { inWindow: 2, crossed: true },
    ]);
  });

  it('a primary that does not answer: the count is rejected after the timeout (the watch logs it, the answer is unchanged)', async () => {
    vi.useFakeTimers();
    const w = new PrimaryRefusalCounter(workerChannel(new RefusalCounter(3, 60_000, 100), true));
    const counted = w.add('t', 1);
    const assertion = expect(counted).rejects.toThrow('did not answer within 5s');
    await vi.advanceTimersByTimeAsync(5_000);
    await assertion;
  });

  it('a primary stalled past the timeout at a crossing: the crossing it made unheard lapses, and a later refusal over the threshold crosses (and revokes)', async () => {
    vi.useFakeTimers();
    const shared = new RefusalCounter(3, 60_000, 100);
    const { channel, resume } = stalledChannel(shared);
    const w = new PrimaryRefusalCounter(channel);
    const given = [w.add('t', 1_000), w.add('t', 1_001), w.add('t', 1_002)].map((p) => expect(p).rejects.toThrow('did not answer within 5s'));
    await vi.advanceTimersByTimeAsync(5_000);
    await Promise.all(given);
    // The primary counts the queued refusals after the worker gave up on them: the third crossed, unheard.
    resume();
    const later = w.add('t', 1_002 + TRIP_HOLD_MS);
    await vi.advanceTimersByTimeAsync(1);
    expect(await later).toEqual({ inWindow: 3, crossed: true });
  });

  it('within the hold after a crossing, further refusals do not cross again (one burst, one revocation)', () => {
    const c = new RefusalCounter(3, 60_000, 100);
    for (const t of [0, 1, 2]) c.add('t', t);
    expect(c.add('t', 2 + TRIP_HOLD_MS - 1).crossed).toBe(false);
    expect(c.add('t', 2 + TRIP_HOLD_MS).crossed).toBe(true);
  });
});
