/**
 * Path confusion (issue 7, SPEC §2) against the real gate: every row of the path corpus with a
 * valid token for /orders/42 and below, through the proxy (raw sockets: fetch and undici would
 * normalize the target), Envoy's HTTP and gRPC services and forward-auth. The recording upstream
 * sees only the controls, and then only the canonical path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTarget } from '../../src/core/request-target.ts';
import { rowTests, type Row } from './check.ts';
import { bearer } from './corpus/jwt-structure.ts';
import { GATE_SCENE, pathCorpus } from './corpus/paths.ts';
import { startAttackGate, type AttackGate } from './harness.ts';
import { signed } from './jws.ts';

let g: AttackGate;
beforeAll(async () => {
  g = await startAttackGate();
});
afterAll(async () => {
  await g?.close();
});

const ROWS: readonly Row[] = pathCorpus(GATE_SCENE).map((r) => ({ ...r, headers: (c) => bearer(signed(c.keys.a)) }));

describe('path confusion', () => {
  rowTests(() => g, ROWS);

  it('the upstream only ever saw canonical paths inside the grant', () => {
    expect(g.upstream.requests.length).toBeGreaterThan(0);
    for (const r of g.upstream.requests) {
      const t = parseTarget(r.url);
      expect(t.ok, r.url).toBe(true);
      if (!t.ok) continue;
      expect(t.target.segments.slice(0, 2), r.url).toEqual(['orders', '42']);
      expect(t.target.path + t.target.query, 'forwarded form is canonical').toBe(r.url);
    }
  });
});
