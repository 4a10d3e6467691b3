/**
 * Dot-like segments (issue 21 item 7): segments that become `.` or `..` after trimming, a Windows
 * best-fit mapping, or a re-parse of decoded `?`/`#`/`;` are refused (400 path_dot_like_segment)
 * unless `limits.allow_dot_like_segments` says the backend does not fold them.
 */
import { rm } from 'node:fs/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bearer, input, makeGate, makeTestKeys } from '../fixtures/gate.ts';
import { sign } from '../fixtures/tokens.ts';
import { isDotLikeSegment } from '../../src/core/dot-like.ts';
import { parseTarget } from '../../src/core/request-target.ts';

/** From the issue, and the same class found while fixing it. */
const DOT_LIKE = [
  '/..%20', '/.%20', '/..%C2%A0', '/..%E2%88%95', '/..%C2%A5', '/..%3F', '/..%23', // the list
  '/a/..%20/b', '/%20..', '/%20.', '/.%20.', '/..%E3%80%80', // leading/inner space, ideographic space
  '/..%E2%80%8B', '/.%E2%80%8B.', '/..%EF%BB%BF', '/..%C2%AD', // zero-width space, BOM, soft hyphen
  '/..%E2%81%84admin', '/a%E2%88%95..', '/..%E2%82%A9', '/..%EF%BF%A5', '/..%E2%88%96', // fraction slash, won, fullwidth yen, set minus
  '/..%3Fx=1', '/.%23frag', '/..%20%3Bx', '/...%20', '/..%20.', // re-parse cuts; trailing space and dots (Win32)
  '/..%EF%BC%9F', '/..%EF%BC%83', // fullwidth ? and #
];

/** Look alike but fold to nothing dangerous: stay allowed. */
const ORDINARY = ['/...', '/....', '/a..b', '/a.%20b', '/a%20b', '/.a%20', '/..a%C2%A0', '/x%E2%88%95y', '/caf%C3%A9', '/%C2%A5100', '/a%3Bb', '/%20a'];

/**
 * A decoded `?` or `#` anywhere in a segment: a re-parsing backend ends the path there, so
 * `/orders/42%3F/items`, which a grant for `/orders/STAR/items` matches, reaches it as `/orders/42` (a review).
 */
const CUTS = ['/%3F', '/a%3F..', '/%23x', '/orders/42%3F/items', '/orders/42%23/items', '/a%EF%BC%9Fb', '/a%EF%BC%83', '/a%EF%B9%96b', '/a%EF%B9%9Fb', '/a%E2%81%87b', '/a%E2%81%89b'];

/** Only whitespace or dropped characters before any `;`: an empty segment once trimmed (a review). */
const TRIMMED_EMPTY = ['/%20', '/orders/%20/items', '/%C2%A0', '/%E2%80%8B', '/%20%3Bx', '/%E3%80%80%20', '/%20%CD%BEx'];

describe('dot-like segments: refused by default', () => {
  it.each(DOT_LIKE)('%s → path_dot_like_segment', (raw) => {
    expect(parseTarget(raw)).toEqual({ ok: false, reason: 'path_dot_like_segment' });
  });

  it.each(DOT_LIKE)('%s is allowed when the backend does not fold (allow_dot_like_segments)', (raw) => {
    expect(parseTarget(raw, undefined, true).ok).toBe(true);
  });

  it.each(ORDINARY)('%s stays allowed', (raw) => {
    expect(parseTarget(raw).ok).toBe(true);
  });

  it.each(CUTS)('%s → path_encoded_delimiter by default, allowed with allow_dot_like_segments', (raw) => {
    expect(parseTarget(raw)).toEqual({ ok: false, reason: 'path_encoded_delimiter' });
    expect(parseTarget(raw, undefined, true).ok).toBe(true);
  });

  it.each(TRIMMED_EMPTY)('%s → path_empty_segment by default, allowed with allow_dot_like_segments', (raw) => {
    expect(parseTarget(raw)).toEqual({ ok: false, reason: 'path_empty_segment' });
    expect(parseTarget(raw, undefined, true).ok).toBe(true);
  });
});

/** A reference fold: what a trimming, best-fitting, re-parsing backend makes of one decoded segment. */
function referenceFold(seg: string): string[] {
  const cut = seg.split(/[?#;\uff1f\uff03\uff1b\u037e]/)[0]!;
  const mapped = cut
    .replace(/[\u2044\u2215\u2571\u29f8\uff0f]/g, '/')
    .replace(/[\u00a5\uffe5\u20a9\uffe6\u2216\u29f5\u29f9\ufe68\uff3c]/g, '\\')
    .replace(/[\u2024\ufe52\uff0e]/g, '.')
    .replace(/\u2025/g, '..');
  return mapped.split(/[/\\]/).map((p) => p.replace(/[\s\u00ad\u180e\u200b-\u200d\u2060\ufeff]/g, ''));
}

const PIECES = ['.', '.', '..', ' ', '\u00a0', '\u3000', '\u200b', '\u2215', '\u00a5', '?', '#', ';', 'a', 'b', '\u2025', '\uff0e', 'é', '\u2044'];

describe('dot-like properties', () => {
  it('a segment is dot-like exactly when some folded part is only dots, with 1–2 dots or a dropped character', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 8 }), (pieces) => {
        const seg = pieces.join('');
        const cut = seg.split(/[?#;\uff1f\uff03\uff1b\u037e]/)[0]!;
        const rawParts = cut
          .replace(/[\u2044\u2215\u2571\u29f8\uff0f\u00a5\uffe5\u20a9\uffe6\u2216\u29f5\u29f9\ufe68\uff3c]/g, '/')
          .split('/');
        const folded = referenceFold(seg);
        const expected = folded.some((p, i) => /^\.+$/.test(p) && (p.length <= 2 || p.length !== rawParts[i]!.replace(/\u2025/g, '..').length));
        expect(isDotLikeSegment(seg)).toBe(expected);
      }),
      { numRuns: 5000 },
    );
  });

  it('no target parseTarget accepts has a segment that folds to . or ..', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...PIECES, '/', '%20', '%3F', '%E2%88%95', '%C2%A0', 'x'), { maxLength: 8 }), (pieces) => {
        const raw = '/' + pieces.map((p) => (/^[\x21-\x7e]+$/.test(p) ? p : encodeURIComponent(p))).join('');
        const r = parseTarget(raw);
        if (!r.ok) return;
        for (const seg of r.target.segments) for (const part of referenceFold(seg)) expect(part === '.' || part === '..').toBe(false);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('limits.allow_dot_like_segments through the gate', () => {
  it('default: refused before any token work; true: judged like any other segment', async () => {
    const keys = await makeTestKeys();
    const strict = await makeGate(keys);
    const lenient = await makeGate(keys, (c) => (c.limits = { allow_dot_like_segments: true }));
    try {
      const auth = bearer(await sign(keys.a));
      expect(await strict.gate.decide(input('GET', '/orders/42/..%20', auth))).toMatchObject({ kind: 'deny', reason: 'path_dot_like_segment' });
      expect(await lenient.gate.decide(input('GET', '/orders/42/..%20', auth))).toMatchObject({ kind: 'allow', path: '/orders/42/..%20' });
    } finally {
      strict.gate.stop();
      lenient.gate.stop();
      await rm(strict.dir, { recursive: true, force: true });
      await rm(lenient.dir, { recursive: true, force: true });
    }
  });
});
