/**
 * The proxy handler when something it calls throws (a review of the guard that keeps one request's
 * failure from ending the process): the forwarder throwing before it took the request must give the
 * token's inflight slot back (it leaked: after `limits.max_inflight_per_token` such throws the grant
 * was refused 429 until a restart), and a log destination that throws for every line — audit lines and
 * the error that tells of the first throw alike, as pino's stderr destination does once destroyed —
 * must still leave the process running and the request answered.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../../src/observability/audit.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import type { TransportContext } from '../../../src/transports/context.ts';
import { PendingDecisions } from '../../../src/transports/pending-decisions.ts';
import type { Forwarder } from '../../../src/transports/proxy/forward.ts';
import { createProxyHandler } from '../../../src/transports/proxy/handler.ts';
import { makeGate, makeTestKeys, type TestGate, type TestKeys } from '../../fixtures/gate.ts';
import { send } from '../../fixtures/servers.ts';
import { sign } from '../../fixtures/tokens.ts';

let keys: TestKeys;
let t: TestGate;
let server: Server;
let url: string;
let forwards = 0;
let breakLog = false;
const logs: Record<string, any>[] = [];

beforeAll(async () => {
  keys = await makeTestKeys();
  t = await makeGate(keys, (c) => {
    c.limits = { max_inflight_per_token: 1 };
  });
  const stream = {
    write(s: string): void {
      if (breakLog) throw new Error('SonicBoom destroyed');
      logs.push(JSON.parse(s) as Record<string, any>);
    },
  };
  const logger = createLogger({ level: 'info', destination: 'stdout' }, stream);
  const ctx: TransportContext = { config: t.gate.config, gate: t.gate, metrics: new Metrics({ defaultMetrics: false }), audit: new AuditLog(logger), logger };
  // Throws before an exchange exists, as a header the forwarder cannot build would.
  const forwarder = {
    forward(): void {
      forwards++;
      throw new Error('building the upstream request failed');
    },
  } as unknown as Forwarder;
  const handler = createProxyHandler(ctx, forwarder, new PendingDecisions(ctx));
  server = createServer((req, res) => handler(req, res, false));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  t?.gate.stop();
});

const cut = (p: Promise<unknown>): Promise<unknown> => p.then(() => 'answered', (e: Error) => e);

describe('the proxy handler when a call throws', () => {
  it('the forwarder throws before taking the request: the connection is cut, the slot given back (the next request reaches the forwarder, not 429)', async () => {
    const token = await sign(keys.a, { jti: 'one-slot' });
    for (let i = 1; i <= 3; i++) {
      expect(await cut(send(url, '/orders/42', { headers: { authorization: `Bearer ${token}` } }))).toBeInstanceOf(Error);
      expect(forwards).toBe(i);
    }
    expect(logs.filter((l) => l.msg === 'answering a request failed')).toHaveLength(3);
  });

  it('every line the log writes throws (its destination destroyed): refusals are still answered, the process goes on', async () => {
    const waited = await sign(keys.a, { jti: 'not-seen-before' });
    const cached = await sign(keys.a, { jti: 'seen-before' });
    expect((await send(url, '/admin', { headers: { authorization: `Bearer ${cached}` } })).status).toBe(403);
    breakLog = true;
    try {
      // A cached token decided in the request's own tick, one that waited for its verification, and an
      // allow whose forwarder throws: the error that tells of each throw cannot be written either.
      expect((await send(url, '/admin', { headers: { authorization: `Bearer ${cached}` } })).status).toBe(403);
      expect((await send(url, '/admin', { headers: { authorization: `Bearer ${waited}` } })).status).toBe(403);
      expect(await cut(send(url, '/orders/42', { headers: { authorization: `Bearer ${cached}` } }))).toBeInstanceOf(Error);
    } finally {
      breakLog = false;
    }
    expect((await send(url, '/admin', { headers: { authorization: `Bearer ${cached}` } })).status).toBe(403);
  });
});
