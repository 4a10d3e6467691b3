/**
 * Revocation entries as every source reads them (file lines, Redis members and log records): an
 * entry that no token could match, or a line that names a member twice, is reported and skipped,
 * never enforced under one reading and not another (a review found both accepted).
 */
import { describe, expect, it } from 'vitest';
import { parseEntryText, parseJsonLines } from '../../src/revocation/entries.ts';

describe('parseEntryText / parseJsonLines', () => {
  it('reads a good line of each kind', () => {
    expect(parseEntryText('{"jti":"a","exp":5}')).toEqual({ kind: 'jti', jti: 'a', exp: 5 });
    expect(parseEntryText('{"sub":"s","before":7}')).toEqual({ kind: 'sub', sub: 's', before: 7, exp: undefined });
    expect(parseEntryText('{"txn":"t"}')).toEqual({ kind: 'txn', txn: 't', exp: undefined });
  });

  it('refuses duplicate members, deep nesting, and ids no token carries', () => {
    expect(parseEntryText('{"jti":"a","jti":"b"}')).toBe('a member is named twice');
    expect(parseEntryText('{"sub":"s","before":1,"before":99}')).toBe('a member is named twice');
    expect(parseEntryText(`{"jti":"a","x":${'['.repeat(50_000)}${']'.repeat(50_000)}}`)).toBe('a member is named twice');
    expect(parseEntryText('{"jti":"a\\u0000"}')).toMatch(/can never match a token/);
    expect(parseEntryText('{"sub":" s","before":1}')).toMatch(/can never match a token/);
    expect(parseEntryText('1e400')).toBe('expected a JSON object');
    expect(parseEntryText('{"jti":"a","exp":1e400}')).toMatch(/"exp" must be a number/);
  });

  it('reports such lines by number and keeps the rest', () => {
    const { entries, errors } = parseJsonLines('{"jti":"ok"}\n{"jti":"x","jti":"y"}\n{"txn":"caf\u00e9"}\n{"txn":"fine"}\n');
    expect(entries.map((e) => (e.kind === 'jti' ? e.jti : e.kind === 'txn' ? e.txn : e.sub))).toEqual(['ok', 'fine']);
    expect(errors.map((e) => e.line)).toEqual([2, 3]);
  });
});
