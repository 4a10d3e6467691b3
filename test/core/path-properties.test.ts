import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePattern, matchPattern } from '../../src/core/path-pattern.ts';
import { encodeSegment, parseTarget } from '../../src/core/request-target.ts';

/** Single UTF-16 code units, so lone surrogates show up as often as anything else. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

/** Path-ish tokens: the pieces path-confusion attacks are built from. */
const TOKENS = [
  '/', '/', '/', '.', '..', '%2e', '%2E', '%2f', '%2F', '%5c', '%25', '%', ';', '\\', 'a', 'b', '?', '#',
  '%c3%a9', '%C3%A9', '%ef%bc%8e', '%EF%BC%8F', '%c0%ae', '%00', '%41', '%3b', '%7e', '~', '*', ' ', 'é', '\ud800',
];
const token = fc.constantFrom(...TOKENS);
const pathish = fc.array(token, { maxLength: 14 }).map((ts) => ts.join(''));
const originish = pathish.map((s) => '/' + s);

const anyTarget = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: codeUnit, maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => '/' + s),
  pathish,
  originish,
);

function isDotHead(seg: string): boolean {
  const head = seg.split(';')[0];
  return head === '.' || head === '..';
}

describe('parseTarget properties', () => {
  it('never throws, on any string', () => {
    fc.assert(
      fc.property(anyTarget, (raw) => {
        const r = parseTarget(raw);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 3000 },
    );
  });

  it('accepted targets: canonical path re-parses to the same segments; no segment carries structure', () => {
    fc.assert(
      fc.property(fc.oneof(originish, anyTarget), (raw) => {
        const r = parseTarget(raw);
        if (!r.ok) return;
        const { path, segments, query } = r.target;
        expect(raw.endsWith(query) && (query === '' || query.startsWith('?'))).toBe(true);
        const again = parseTarget(path);
        expect(again).toEqual({ ok: true, target: { path, segments, query: '' } });
        expect(path.startsWith('/')).toBe(true);
        expect(segments.map(encodeSegment).join('/')).toBe(path.slice(1));
        segments.forEach((seg, i) => {
          expect(isDotHead(seg)).toBe(false);
          expect(isDotHead(seg.normalize('NFKC'))).toBe(false);
          expect(seg.includes('/') || seg.includes('\\')).toBe(false);
          expect(seg.normalize('NFKC').includes('/') || seg.normalize('NFKC').includes('\\')).toBe(false);
          if (seg === '') expect(i).toBe(segments.length - 1);
        });
      }),
      { numRuns: 3000 },
    );
  });

  it('decodes UTF-8 exactly as a fatal TextDecoder does', () => {
    const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    const highByte = fc.oneof(fc.integer({ min: 0x80, max: 0xff }), fc.constant(0x61));
    // Code point cp forced into n bytes: valid, overlong (too many bytes), surrogate or > U+10FFFF.
    const forced = fc.tuple(fc.integer({ min: 0, max: 0x1fffff }), fc.integer({ min: 2, max: 4 })).map(([cp, n]) => {
      const lead = [0, 0, 0xc0, 0xe0, 0xf0][n]!;
      const bytes = [lead | (cp >> (6 * (n - 1)))];
      for (let k = n - 2; k >= 0; k--) bytes.push(0x80 | ((cp >> (6 * k)) & 0x3f));
      return bytes.map((b) => b & 0xff);
    });
    const sequence = fc.array(fc.oneof(forced, highByte.map((b) => [b])), { minLength: 1, maxLength: 4 });
    const mutated = fc
      .tuple(sequence, fc.constantFrom<'keep' | 'truncate' | 'drop-first'>('keep', 'truncate', 'drop-first'))
      .map(([parts, how]) => {
        const bytes = parts.flat();
        return how === 'truncate' ? bytes.slice(0, -1) : how === 'drop-first' ? bytes.slice(1) : bytes;
      })
      .filter((bytes) => bytes.length > 0);
    fc.assert(
      fc.property(mutated, (bytes) => {
        const raw = '/' + bytes.map((b) => '%' + b.toString(16).padStart(2, '0')).join('');
        let expected: string | null;
        try {
          expected = decoder.decode(Uint8Array.from(bytes));
        } catch {
          expected = null;
        }
        const r = parseTarget(raw);
        if (r.ok) expect(r.target.segments).toEqual([expected]);
        else if (expected === null) expect(r.reason).toBe('path_invalid_utf8');
        else expect(r.reason).not.toBe('path_invalid_utf8');
      }),
      { numRuns: 3000 },
    );
  });
});

/** Obviously-correct reference: recursion over pattern tokens and decoded segments. */
function refMatch(pattern: readonly string[], segs: readonly string[]): boolean {
  if (pattern.length === 0) return segs.length === 0;
  const [head, ...tail] = pattern;
  if (head === '**' && tail.length === 0) return true;
  if (segs.length === 0) return false;
  if (head === '*') return segs[0] !== '' && refMatch(tail, segs.slice(1));
  return head === segs[0] && refMatch(tail, segs.slice(1));
}

const patternTokens = fc
  .tuple(
    fc.array(fc.constantFrom('a', 'b', '*', 'a b', 'é'), { maxLength: 4 }),
    fc.constantFrom<'none' | 'rest' | 'slash'>('none', 'rest', 'slash'),
  )
  .map(([mid, end]) => (end === 'rest' ? [...mid, '**'] : end === 'slash' && mid.length > 0 ? [...mid, ''] : mid));
const targetSegments = fc
  .tuple(fc.array(fc.constantFrom('a', 'b', 'c', '*', '**', 'a b', 'é'), { maxLength: 6 }), fc.boolean())
  .map(([segs, slash]) => (slash && segs.length > 0 ? [...segs, ''] : segs));
const toRaw = (segs: readonly string[], enc: (s: string) => string): string =>
  '/' + segs.map((s) => (s === '*' || s === '**' ? s : enc(s))).join('/');

describe('matchPattern properties', () => {
  it('agrees with the reference matcher', () => {
    fc.assert(
      fc.property(patternTokens, targetSegments, (pTokens, tSegs) => {
        const p = compilePattern(toRaw(pTokens, encodeSegment));
        expect(p).not.toBeNull();
        const r = parseTarget(toRaw(tSegs, (s) => encodeSegment(s).toLowerCase()));
        expect(r.ok).toBe(true);
        if (!r.ok || p === null) return;
        expect(r.target.segments).toEqual(tSegs);
        expect(matchPattern(p, r.target.segments)).toBe(refMatch(pTokens, tSegs));
      }),
      { numRuns: 3000 },
    );
  });

  it('compilePattern never throws, on any string', () => {
    fc.assert(
      fc.property(fc.oneof(anyTarget, fc.array(fc.constantFrom(...TOKENS, '*', '**'), { maxLength: 8 }).map((t) => '/' + t.join(''))), (s) => {
        const p = compilePattern(s);
        if (p !== null) expect(p.source).toBe(s);
      }),
      { numRuns: 2000 },
    );
  });

  it('never allows outside the grant', () => {
    const grantToken = fc.constantFrom(
      'public', 'public', 'publ', 'ic', '%70ublic', 'PUBLIC', 'public;x', 'public%3B', '%EF%BD%90ublic', 'private', '..', '.',
      '%2e%2e', '%2e', ';', '..;', '/', '/', '/', '%2f', '%5c', '\\', '%252e', '%ef%bc%8e%ef%bc%8e', '%EF%BC%8F', 'x', '',
    );
    const target = fc
      .tuple(fc.boolean(), fc.array(grantToken, { maxLength: 10 }))
      .map(([prefixed, ts]) => '/' + (prefixed ? 'public' : '') + ts.join(''));
    const grants = ['/public/**', '/public/*', '/public/*/**', '/public'].map((s) => compilePattern(s)!);
    fc.assert(
      fc.property(target, (raw) => {
        const r = parseTarget(raw);
        if (!r.ok) return;
        for (const g of grants) {
          if (!matchPattern(g, r.target.segments)) continue;
          expect(r.target.segments[0]).toBe('public');
          expect(r.target.path === '/public' || r.target.path.startsWith('/public/')).toBe(true);
          expect(r.target.path.split('/').some((s) => s === '.' || s === '..')).toBe(false);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
