/**
 * Reloads of large revocation lists are parsed and indexed in slices (src/revocation/slices.ts):
 * the event loop keeps turning — requests keep being answered with the list in force — while a
 * feed of 200,000 lines is judged and indexed, and the result is what the one-go parse gives.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { parseJsonLines } from '../../src/revocation/entries.ts';
import { judgeReload } from '../../src/revocation/reload-guard.ts';
import { RevocationIndex } from '../../src/revocation/revocation-index.ts';
import { eachSliced } from '../../src/revocation/slices.ts';

const now = Math.floor(Date.now() / 1000);
function feed(n: number): string {
  let text = '';
  for (let i = 0; i < n; i++) text += i % 1000 === 7 ? 'not json\n' : i % 20 === 0 ? `{"sub":"spiffe://prod/w-${i}","before":${now},"exp":${now + 3600}}\n` : `{"jti":"jti-${i}-0b7c5f0c"}\n`;
  return text;
}

/** Counts event-loop turns while `work` runs. */
async function turnsDuring<T>(work: () => Promise<T>): Promise<{ turns: number; value: T }> {
  let turns = 0;
  let running = true;
  const count = async (): Promise<void> => {
    while (running) {
      await nextTurn();
      turns++;
    }
  };
  const counting = count();
  try {
    return { value: await work(), turns };
  } finally {
    running = false;
    await counting;
  }
}

describe('reloads of large lists in slices', () => {
  const text = feed(200_000);

  it('judging a 200,000-line feed lets the event loop turn, and finds what the one-go parse finds', async () => {
    const { turns, value } = await turnsDuring(() => judgeReload(text, true));
    expect(turns).toBeGreaterThan(1);
    const once = parseJsonLines(text);
    if ('refused' in value) throw new Error(`refused: ${value.detail}`);
    expect(value.entries).toHaveLength(once.entries.length);
    expect(value.errors).toEqual(once.errors);
    expect(value.errors).toHaveLength(200);
    expect(value.errors[0]).toEqual({ line: 8, message: 'not valid JSON' });
  });

  it('indexing 200,000 entries lets the event loop turn, and revokes what the one-go index revokes', async () => {
    const { entries } = parseJsonLines(text);
    const { turns, value } = await turnsDuring(() => RevocationIndex.of(entries));
    expect(turns).toBeGreaterThan(1);
    expect(value.size).toBe(new RevocationIndex(entries).size);
    expect(value.isRevoked('jti-199999-0b7c5f0c', 'x', now, undefined)).toBe(true);
    expect(value.isRevoked('none', 'spiffe://prod/w-199980', now - 1, undefined)).toBe(true);
    expect(value.isRevoked('none', 'spiffe://prod/w-199981', now - 1, undefined)).toBe(false);
  });

  it('a walk calls its between-slices hook (a load reads the log there) while it runs, not only at the end', async () => {
    const { entries } = parseJsonLines(text);
    const index = new RevocationIndex();
    const sizes: number[] = [];
    await eachSliced(entries, (e) => index.add(e), async () => void sizes.push(index.size));
    expect(sizes.length).toBeGreaterThan(1);
    expect(sizes[0]).toBeLessThan(entries.length); // called part-way
  });
});
