/**
 * Issue 21 item 4: a revocation entry outlives the token it stops. Tokens are accepted until
 * `exp + clock_tolerance`, so every source keeps an entry until `exp` plus the largest tolerance
 * of any issuer (SPEC §5) — at load, in a feed sync, in the journal's replay and compaction at a
 * restart, and in a cluster worker's copy.
 *
 * The tokens here expired 5 s ago by `exp` and are still inside a 30 s tolerance: before the fix
 * every source pruned their entries at load and the revoked tokens were allowed again.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { EventEmitter } from 'node:events';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { FixedClock } from '../../src/core/clock.ts';
import { JournalFollowerSource, type PrimaryChannel } from '../../src/revocation/journal-follower.ts';
import { decide, startGateChild, stopGateChildren } from '../fixtures/gate-child.ts';
import { jwksOf, makeKey, tempDir, writeJson, type TestKey } from '../fixtures/keys.ts';
import { AUDIENCE, ISSUER_A, ISSUER_B, LOCATION, sign } from '../fixtures/tokens.ts';
import { FeedServer } from './feed-server.ts';

let key: TestKey;
const dirs: string[] = [];
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  key = await makeKey('ES256', 'k1');
});
afterEach(() => {
  stopGateChildren();
  vi.useRealTimers();
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('entries are kept until exp + the largest clock tolerance', () => {
  it('file, URL feed and admin journal (with its compaction at start) in a real gate process', async () => {
    const dir = await tempDir('jitgate-retention-');
    dirs.push(dir);
    const jwks = await writeJson(dir, 'jwks.json', jwksOf(key));
    const jwksB = await writeJson(dir, 'jwks-b.json', jwksOf(await makeKey('ES256', 'other')));
    const t = now();
    const exp = t - 5; // past exp, inside the 30 s tolerance below
    await writeFile(join(dir, 'revoked.jsonl'), `{"jti":"by-file","exp":${exp}}\n`);
    const journal = join(dir, 'revocations.journal');
    await writeFile(journal, `{"jti":"by-journal","exp":${exp}}\n{"jti":"long-gone","exp":${t - 3600}}\n`);
    await writeFile(join(dir, 'admin-token'), 'retention-admin-token-0123456789\n');
    const feed = await new FeedServer().start();
    feed.set([{ jti: 'by-feed', exp }]);
    const config = join(dir, 'jitgate.yaml');
    await writeFile(
      config,
      JSON.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        upstream: { url: 'http://127.0.0.1:9' },
        service: { audience: AUDIENCE, location: LOCATION },
        grant: { type: 'jit_grant', actions: { read: ['GET', 'HEAD'] } },
        // The largest tolerance wins, whichever issuer it belongs to (here the second one).
        issuers: [
          { issuer: ISSUER_B, jwks_file: jwksB, algorithms: ['ES256'], clock_tolerance: '2s' },
          { issuer: ISSUER_A, jwks_file: jwks, algorithms: ['ES256'], clock_tolerance: '30s' },
        ],
        revocation: { file: join(dir, 'revoked.jsonl'), url: feed.url, journal, poll_interval: '100ms' },
        admin: { token_file: join(dir, 'admin-token') },
      }),
    );
    try {
      const { port } = await startGateChild(config);
      const token = (jti: string) => sign(key, { jti, iat: exp - 60, exp });
      expect(await decide(port, await token('not-revoked'))).toBe('allow:granted'); // inside the tolerance
      expect(await decide(port, await token('by-file'))).toBe('deny:revoked');
      expect(await decide(port, await token('by-feed'))).toBe('deny:revoked');
      expect(await decide(port, await token('by-journal'))).toBe('deny:revoked');
      // Compaction at start dropped only what is past exp + tolerance.
      expect(await readFile(journal, 'utf8')).toBe(`{"jti":"by-journal","exp":${exp}}\n`);
    } finally {
      await feed.stop();
    }
  });
});

describe('a cluster worker keeps the entries it was handed just as long', () => {
  it('prunes past exp + retainMs on its prune tick, not at exp', async () => {
    vi.useFakeTimers();
    const NOW = 1_764_000_000;
    const clock = new FixedClock(NOW * 1000);
    const ch = Object.assign(new EventEmitter(), { send: () => {} }) as unknown as PrimaryChannel & EventEmitter;
    const src = new JournalFollowerSource('/j', ch, { clock, retainMs: 30_000 });
    const started = src.start();
    ch.emit('message', { type: 'jitgate:revocations-snapshot', entries: [{ kind: 'jti', jti: 'w', exp: NOW + 1 }] });
    await started;
    clock.set((NOW + 20) * 1000); // past exp, inside the tolerance: a token could still be accepted
    await vi.advanceTimersByTimeAsync(61_000);
    expect(src.index.isRevoked('w', 's', 0, undefined)).toBe(true);
    clock.set((NOW + 40) * 1000); // past exp + tolerance: the token is expired anyway
    await vi.advanceTimersByTimeAsync(61_000);
    expect(src.index.size).toBe(0);
    src.stop();
  });
});
