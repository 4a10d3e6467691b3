/**
 * Status lists through the production wiring (buildGate: remote keys, metrics, logs), against a real
 * JWKS server and a real list server: lists verify with the issuer's remote key set (a list signed with
 * a key rotated in later is picked up), a list signed by a key outside it is refused and logged, a
 * token whose own signature fails never makes the gate fetch, and a list nobody uses is dropped.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FixedClock } from '../../src/core/clock.ts';
import { buildTestGate, logged, type BuiltGate } from '../fixtures/built-gate.ts';
import { jwksOf, makeKey, type TestKey } from '../fixtures/keys.ts';
import { ISSUER_A, NOW } from '../fixtures/tokens.ts';
import { JwksServer } from '../keys/jwks-server.ts';
import { eventually, outcome, statusToken } from './helpers.ts';
import { cliList, StatusListServer } from './list-server.ts';

let k1: TestKey;
let k2: TestKey;
let stranger: TestKey;
let jwks: JwksServer;
let lists: StatusListServer;
let built: BuiltGate;
const clock = new FixedClock(NOW * 1000);

beforeAll(async () => {
  [k1, k2, stranger] = await Promise.all([makeKey('ES256', 'k1'), makeKey('ES256', 'k2'), makeKey('ES256', 'x')]);
  jwks = await new JwksServer().start();
  jwks.doc = jwksOf(k1);
  lists = await new StatusListServer().start();
  built = await buildTestGate(
    {
      issuers: [
        {
          issuer: ISSUER_A,
          jwks_uri: jwks.url,
          algorithms: ['ES256'],
          jwks_refresh: '100ms',
          jwks_refresh_min: '20ms',
          status_list: { allowed_uris: [lists.uri('/status/')], refresh: '1s', max_stale: '10s' },
        },
      ],
    },
    clock,
  );
});
afterAll(async () => {
  built.gate.stop();
  await Promise.all([jwks.stop(), lists.stop(), rm(built.dir, { recursive: true, force: true })]);
});

async function fetches(result: string): Promise<number> {
  const m = await built.metrics.statusListFetches.get();
  return m.values.filter((v) => v.labels.result === result).reduce((n, v) => n + v.value, 0);
}

describe('status lists with remote issuer keys', () => {
  it('a list signed by the remote set verifies; one signed by a key rotated in later is picked up', async () => {
    const path = '/status/rotating';
    const uri = lists.uri(path);
    lists.lists.set(path, await cliList(k1, { uri, bits: 1, size: 32, iat: NOW, statuses: new Map() }));
    const token = await statusToken(k1, uri, 5);
    expect(await outcome(built.gate, token)).toMatchObject({ reason: 'granted' });
    expect(logged(built.logs, 'status list fetched').some((l) => l.uri === uri && l.entries === 32)).toBe(true);
    expect(await fetches('ok')).toBeGreaterThanOrEqual(1);

    jwks.doc = jwksOf(k1, k2);
    lists.lists.set(path, await cliList(k2, { uri, bits: 1, size: 32, iat: NOW + 1, statuses: new Map([[5, 1]]) }));
    await eventually(async () => (await outcome(built.gate, token)).reason === 'revoked', 5_000, 'the list signed by k2 to apply');
  });

  it('a list whose key leaves the set stops counting at once, not after max_stale; one re-signed by a key in the set is picked up (a review)', async () => {
    const path = '/status/withdrawn';
    const uri = lists.uri(path);
    const probe = lists.uri('/status/probe-k2'); // never served: the probe only asks whether k2 is known
    jwks.doc = jwksOf(k1, k2);
    await eventually(async () => (await outcome(built.gate, await statusToken(k2, probe, 1))).reason !== 'unknown_key', 5_000, 'k2 in the set');
    // The list, signed by k2, says entry 1 is VALID; the token is signed by k1, which stays.
    lists.lists.set(path, await cliList(k2, { uri, bits: 1, size: 32, iat: NOW, statuses: new Map() }));
    const token = await statusToken(k1, uri, 1);
    expect(await outcome(built.gate, token)).toMatchObject({ reason: 'granted' });

    jwks.doc = jwksOf(k1); // k2 withdrawn; the publisher still serves its list
    await eventually(async () => (await outcome(built.gate, await statusToken(k2, probe, 1))).reason === 'unknown_key', 5_000, 'k2 out of the set');
    expect(await outcome(built.gate, token)).toEqual({ kind: 'deny', reason: 'status_list_signature', status: 401 });

    // Re-signed by k1, newer: picked up by the retry after the failed fetch (min(refresh, 5 s)).
    lists.lists.set(path, await cliList(k1, { uri, bits: 1, size: 32, iat: NOW + 1, statuses: new Map([[1, 1]]) }));
    await eventually(async () => (await outcome(built.gate, token)).reason === 'revoked', 5_000, 'the list re-signed by k1');
  });

  it('a signed list nested deeper than the stack reaches is malformed (401), not a fetch failure (503)', async () => {
    const path = '/status/deep';
    const uri = lists.uri(path);
    const { CompactSign } = await import('jose');
    // Signed as text: no JSON library would build this value.
    const payload = `{"sub":${JSON.stringify(uri)},"iat":${NOW},"status_list":{"bits":1,"lst":"eNrbuRgAAhcBXQ"},"x":${'['.repeat(20_000)}${']'.repeat(20_000)}}`;
    lists.lists.set(path, await new CompactSign(new TextEncoder().encode(payload)).setProtectedHeader({ alg: 'ES256', typ: 'statuslist+jwt', kid: 'k1' }).sign(k1.privateKey));
    expect(await outcome(built.gate, await statusToken(k1, uri, 0))).toEqual({ kind: 'deny', reason: 'status_list_malformed', status: 401 });
  });

  it('a list signed by a key outside the set → 401 status_list_signature, logged at error with the reason', async () => {
    const path = '/status/stranger';
    const uri = lists.uri(path);
    lists.lists.set(path, await cliList(stranger, { uri, bits: 1, size: 32, iat: NOW, statuses: new Map() }));
    expect(await outcome(built.gate, await statusToken(k1, uri, 0))).toEqual({ kind: 'deny', reason: 'status_list_signature', status: 401 });
    const line = logged(built.logs, 'status list unusable').find((l) => l.uri === uri);
    expect(line).toMatchObject({ level: 'error', result: 'status_list_signature', issuer: ISSUER_A });
    expect(await fetches('status_list_signature')).toBeGreaterThanOrEqual(1);
  });

  it('a token whose own signature fails makes no list request', async () => {
    const path = '/status/unverified';
    const good = await statusToken(k1, lists.uri(path), 0);
    const forged = await statusToken(stranger, lists.uri(path), 0, {}); // kid x: not in the set
    const tampered = `${good.slice(0, -6)}AAAAAA`;
    expect((await outcome(built.gate, forged)).reason).toBe('unknown_key');
    expect((await outcome(built.gate, tampered)).reason).toBe('bad_signature');
    expect(lists.requestsFor(path)).toBe(0);
  });

  it('a list unused for max(max_stale, 10 × refresh) is dropped, then fetched again on its next use', async () => {
    const path = '/status/idle';
    const uri = lists.uri(path);
    lists.lists.set(path, await cliList(k1, { uri, bits: 1, size: 32, iat: NOW, statuses: new Map() }));
    const token = await statusToken(k1, uri, 0);
    expect(await outcome(built.gate, token)).toMatchObject({ reason: 'granted' });
    const entry = [...built.gate.statusLists[0]!.entries()].find((e) => e.uri === uri)!;
    expect(entry.held).toBe(true);
    try {
      clock.advance(10_001);
      await eventually(() => !entry.held, 5_000, 'the idle list to be dropped');
      const before = lists.requestsFor(path);
      expect(await outcome(built.gate, token)).toMatchObject({ reason: 'granted' });
      expect(lists.requestsFor(path)).toBe(before + 1);
    } finally {
      clock.set(NOW * 1000);
    }
  });
});
