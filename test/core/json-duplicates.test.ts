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
    ['{"a" : 1 ,\n "a"\t:2}', true],
    ['{"__proto__":1,"__proto__":2}', true],
    ['{"__proto__":{"a":1},"b":{"a":2}}', false],
    ['{"a":"b\\":","c":"d"}', false],
    ['{"a":[[{"b":[{"c":1,"d":{"e":1,"e":1}}]}]]}', true],
    ['{"a":"\\u0062","\\u0062":1,"b":2}', true],
  ])('%s → %s', (json, dup) => {
    expect(hasDuplicateKeys(json, JSON.parse(json))).toBe(dup);
  });

  it('agrees with a reference built from JSON.parse on generated objects', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        // JSON.stringify never emits duplicates; append one to every non-empty object and check.
        const text = JSON.stringify(v);
        expect(hasDuplicateKeys(text, JSON.parse(text))).toBe(false);
        if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
          const k = Object.keys(v)[0]!;
          const dup = `${text.slice(0, -1)},${JSON.stringify(k)}:0}`;
          expect(hasDuplicateKeys(dup, JSON.parse(dup))).toBe(true);
          // The same duplicate deeper down: inside an object member and inside an array.
          for (const outer of [`{"x":1,"y":${dup}}`, `[1,${dup},{"z":[]}]`]) expect(hasDuplicateKeys(outer, JSON.parse(outer))).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
