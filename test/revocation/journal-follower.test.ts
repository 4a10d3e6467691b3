/**
 * A cluster worker's copy of the admin API's entries (src/revocation/journal-follower.ts), over a
 * stand-in for the IPC channel: it asks for the snapshot, does not start without it, adds and
 * acknowledges each batch. The end-to-end run with real workers is in test/cli/serve.test.ts.
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RevocationEntry } from '../../src/revocation/entries.ts';
import { JournalFollowerSource, type FollowerRequest, type PrimaryChannel } from '../../src/revocation/journal-follower.ts';
import { RevocationIndex } from '../../src/revocation/revocation-index.ts';
import { StartupError } from '../../src/errors.ts';

class Channel extends EventEmitter implements PrimaryChannel {
  readonly sent: FollowerRequest[] = [];
  send(m: FollowerRequest): void {
    this.sent.push(m);
  }
  fromPrimary(m: unknown): void {
    this.emit('message', m);
  }
}

const ENTRIES: RevocationEntry[] = [
  { kind: 'jti', jti: 'j-1', exp: undefined },
  { kind: 'txn', txn: 't-1', exp: 4_000_000_000 },
  { kind: 'sub', sub: 'spiffe://a', before: 1_764_000_000, exp: undefined },
];

afterEach(() => {
  vi.useRealTimers();
});

describe('JournalFollowerSource', () => {
  it('asks for the entries and starts only once the snapshot is in', async () => {
    const ch = new Channel();
    const src = new JournalFollowerSource('/var/lib/jitgate/revocations.journal', ch);
    expect(src.name).toBe('journal:/var/lib/jitgate/revocations.journal');
    let started = false;
    const p = src.start().then(() => (started = true));
    expect(ch.sent).toEqual([{ type: 'jitgate:revocations-sync' }]);
    await new Promise((r) => setTimeout(r, 10));
    expect(started).toBe(false);
    ch.fromPrimary({ type: 'jitgate:revocations-snapshot', entries: ENTRIES });
    await p;
    expect(src.index.size).toBe(3);
    expect(src.index.isRevoked('j-1', 'x', 0, undefined)).toBe(true);
    expect(src.index.isRevoked('j-2', 'spiffe://a', 1_763_999_999, undefined)).toBe(true);
    expect(src.index.isRevoked('j-2', 'x', 0, 't-1')).toBe(true);
    expect(src.index.isRevoked('j-2', 'x', 0, 't-2')).toBe(false);
    src.stop();
  });

  it('adds each later batch, then acknowledges it by id; other messages are ignored', async () => {
    const ch = new Channel();
    const src = new JournalFollowerSource('j', ch);
    const p = src.start();
    ch.fromPrimary({ type: 'jitgate:revocations-snapshot', entries: [] });
    await p;
    ch.fromPrimary({ type: 'jitgate:readiness', id: 3 });
    ch.fromPrimary({ type: 'jitgate:revoke', id: 7, entries: [{ kind: 'jti', jti: 'late', exp: undefined }] });
    expect(src.index.isRevoked('late', 'x', 0, undefined)).toBe(true);
    expect(ch.sent.at(-1)).toEqual({ type: 'jitgate:revoke-ack', id: 7 });
    src.stop();
    // Stopped: no longer listening.
    ch.fromPrimary({ type: 'jitgate:revoke', id: 8, entries: [{ kind: 'jti', jti: 'after-stop', exp: undefined }] });
    expect(src.index.isRevoked('after-stop', 'x', 0, undefined)).toBe(false);
    expect(ch.sent.at(-1)).toEqual({ type: 'jitgate:revoke-ack', id: 7 });
  });

  it('fails startup, naming the key, when the primary never sends the entries', async () => {
    vi.useFakeTimers();
    const ch = new Channel();
    const src = new JournalFollowerSource('j', ch);
    const p = src.start();
    const caught = p.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(10_001);
    const err = await caught;
    expect(err).toBeInstanceOf(StartupError);
    expect((err as Error).message).toMatch(/^revocation\.journal: the cluster primary sent no revocation entries/);
    expect(ch.listenerCount('message')).toBe(0);
  });
});

describe('RevocationIndex.entries', () => {
  it('gives back entries that rebuild an index deciding the same', async () => {
    const idx = new RevocationIndex([
      ...ENTRIES,
      { kind: 'jti', jti: 'j-1', exp: 5 }, // merged with the unbounded one: stays unbounded
      { kind: 'sub', sub: 'spiffe://a', before: 1_764_000_500, exp: 10 }, // a later cut-off wins
    ]);
    const copy = new RevocationIndex(idx.entries());
    expect(copy.size).toBe(idx.size);
    expect([...copy.entries()]).toEqual([...idx.entries()]);
    for (const [jti, sub, iat, txn] of [
      ['j-1', 'x', 0, undefined],
      ['j-9', 'spiffe://a', 1_764_000_400, undefined],
      ['j-9', 'spiffe://a', 1_764_000_600, undefined],
      ['j-9', 'x', 0, 't-1'],
    ] as const) {
      expect(copy.isRevoked(jti, sub, iat, txn)).toBe(idx.isRevoked(jti, sub, iat, txn));
    }
    // Far in the future only the unbounded entries survive a prune, in both.
    await idx.prune(4_100_000_000);
    await copy.prune(4_100_000_000);
    expect([...copy.entries()]).toEqual([...idx.entries()]);
    expect([...idx.entries()].map((e) => e.kind).sort()).toEqual(['jti', 'sub']);
  });
});
