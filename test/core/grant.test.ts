import { describe, expect, it } from 'vitest';
import { compileGrants, matchGrants, type GrantPolicy } from '../../src/core/grant.ts';
import { parseTarget } from '../../src/core/request-target.ts';

const policy: GrantPolicy = { type: 'jit_grant', actions: new Map([['read', ['GET', 'HEAD']]]), location: undefined };

function segments(path: string): readonly string[] {
  const t = parseTarget(path);
  if (!t.ok) throw new Error(`bad test path ${path}`);
  return t.target.segments;
}

function grant(paths: unknown[], actions: unknown[] = ['read']): unknown[] {
  return [{ type: 'jit_grant', actions, paths }];
}

describe('compileGrants: compiled patterns are shared between tokens', () => {
  it('two tokens naming the same pattern get the same frozen pattern object', () => {
    const a = compileGrants(grant(['/orders/*/lines/**']), policy)!;
    const b = compileGrants(grant(['/orders/*/lines/**']), policy)!;
    expect(a[0]!.patterns[0]).toBe(b[0]!.patterns[0]);
    expect(Object.isFrozen(a[0]!.patterns[0])).toBe(true);
    expect(matchGrants(b, 'GET', segments('/orders/7/lines/1'))).toBe(0);
    expect(matchGrants(b, 'GET', segments('/orders/7/notes'))).toBe('path_not_granted');
  });

  it('a malformed pattern stays refused the second time it is seen', () => {
    for (let k = 0; k < 3; k++) {
      expect(compileGrants(grant(['/orders/**/x']), policy)).toBeNull();
      expect(compileGrants(grant(['/orders/%2F']), policy)).toBeNull();
      expect(compileGrants(grant(['/ok', 'relative']), policy)).toBeNull();
    }
  });

  it('stays correct past the memo bound: thousands of distinct patterns, then the first ones again', () => {
    for (let i = 0; i < 3000; i++) {
      const entries = compileGrants(grant([`/p${i}/*`]), policy)!;
      expect(matchGrants(entries, 'HEAD', segments(`/p${i}/x`))).toBe(0);
      expect(matchGrants(entries, 'HEAD', segments(`/p${i + 1}/x`))).toBe('path_not_granted');
    }
    const again = compileGrants(grant(['/p0/*']), policy)!;
    expect(matchGrants(again, 'GET', segments('/p0/y'))).toBe(0);
    expect(matchGrants(again, 'GET', segments('/p0'))).toBe('path_not_granted');
  });
});
