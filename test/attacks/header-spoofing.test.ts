/**
 * Header spoofing (issue 7, SPEC §2, §4): identity headers in any spelling, method and routing
 * overrides, Connection tricks, upgrades, CRLF and oversized heads, through the real gate's proxy,
 * Envoy's HTTP and gRPC services and forward-auth. Allowed rows check what the backend (or Envoy)
 * is told; refused rows check the exact answer and that the upstream saw nothing.
 */
import { afterAll, beforeAll, describe } from 'vitest';
import { rowTests } from './check.ts';
import { HEADER_ROWS } from './corpus/headers.ts';
import { startAttackGate, type AttackGate } from './harness.ts';

let g: AttackGate;
beforeAll(async () => {
  g = await startAttackGate();
});
afterAll(async () => {
  await g?.close();
});

describe('header spoofing', () => {
  rowTests(() => g, HEADER_ROWS);
});
