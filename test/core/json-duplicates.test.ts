import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hasDuplicateKeys } from '../../src/core/json-duplicates.ts';

describe('hasDuplicateKeys', () => {
  it.each([
    ['{"a":1,"a":2}', true],
    ['{"iss":"x","\\u0069ss":"y"}', true],
    ['{"a":{"b":1,"b":2}}', true],
    ['{"a":[{"b":1},{"b":2}]}', false],
    ['{"a":"\\"a\\"","b":"a"}', false],
    ['{"a":{"a":1}}', false],
    ['{"k":"}","k2":"{"}', false],
    ['{"x":["a","a"]}', false],
    ['{"a\\\\":1,"a":2}', false],
    ['[]', false],
    ['{}', false],
  ])('%s → %s', (json, dup) => {
    expect(hasDuplicateKeys(json)).toBe(dup);
  });

  it('agrees with a reference built from JSON.parse on generated objects', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        // JSON.stringify never emits duplicates; append one to every non-empty object and check.
        const text = JSON.stringify(v);
        expect(hasDuplicateKeys(text)).toBe(false);
        if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
          const k = Object.keys(v)[0]!;
          expect(hasDuplicateKeys(`${text.slice(0, -1)},${JSON.stringify(k)}:0}`)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
