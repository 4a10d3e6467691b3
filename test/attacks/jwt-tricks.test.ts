/**
 * JWT tricks (issue 7) against the real gate: every row through the proxy (a recording upstream
 * must see nothing unless the row is a control), Envoy's HTTP and gRPC services and forward-auth,
 * with the same reason everywhere. The attacker server behind jku/x5u must never be contacted.
 * Rows marked `bug` run as `it.fails` (see rowTests in check.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowTests, type Row } from './check.ts';
import { JWT_CLAIMS } from './corpus/jwt-claims.ts';
import { JWT_STRUCTURE } from './corpus/jwt-structure.ts';
import { startAttackGate, type AttackGate } from './harness.ts';

let g: AttackGate;
beforeAll(async () => {
  g = await startAttackGate();
});
afterAll(async () => {
  await g?.close();
});

const ROWS: readonly (Row & { bug?: string })[] = [...JWT_STRUCTURE, ...JWT_CLAIMS];

describe('jwt tricks', () => {
  rowTests(() => g, ROWS);
  it('never contacted the attacker server', () => {
    expect(g.attackerHits).toEqual([]);
  });
});
