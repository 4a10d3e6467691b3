/**
 * JWT tricks (issue 7) against the real gate: every row through the proxy (a recording upstream
 * must see nothing unless the row is a control), Envoy's HTTP and gRPC services and forward-auth,
 * with the same reason everywhere. The attacker server behind jku/x5u must never be contacted.
 *
 * Rows marked `bug` are refusals the gate does not make yet; they run as `it.fails` so the suite
 * stays green while the bug is open, and turn red the day it is fixed (then drop the mark).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRow, type Row } from './check.ts';
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
  it('has unique row names', () => {
    expect(new Set(ROWS.map((r) => r.name)).size).toBe(ROWS.length);
  });
  for (const row of ROWS) {
    if (row.bug === undefined) it(row.name, async () => void (await checkRow(g, row)));
    else it.fails(`${row.name} [open bug: ${row.bug}]`, async () => void (await checkRow(g, row)));
  }
  it('never contacted the attacker server', () => {
    expect(g.attackerHits).toEqual([]);
  });
});
