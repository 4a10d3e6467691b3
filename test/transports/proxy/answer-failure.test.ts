/**
 * A throw while answering one proxied request costs that request, never the gate (SPEC §3 "fail
 * closed", and no input may crash the process). The throw comes from where one really can: the
 * audit line's write, as a pino destination throws once it is destroyed. Before the guard a cached
 * token's refusal (decided in the request's own tick) was an uncaught exception, and a decision that
 * waited an unhandled rejection: either ends the process and every connection it holds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.ts';
import { startJitgate, type Running } from '../../../src/runtime.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import type { TestKeys } from '../../fixtures/gate.ts';
import { send, startRecordingUpstream, tokenNow, writeGateConfig, type RecordingUpstream } from '../../fixtures/servers.ts';

let up: RecordingUpstream;
let running: Running;
let url: string;
let keys: TestKeys;
let breakAudit = false;
const lines: Record<string, any>[] = [];

beforeAll(async () => {
  up = await startRecordingUpstream();
  const cfg = await writeGateConfig(up.url);
  keys = cfg.keys;
  // Every line but an audit line gets through while `breakAudit` holds, so the gate can say what failed.
  const sink = {
    write(chunk: string): boolean {
      for (const line of chunk.split('\n')) {
        if (line === '') continue;
        const parsed = JSON.parse(line) as Record<string, any>;
        if (breakAudit && parsed.type === 'audit') throw new Error('SonicBoom destroyed');
        lines.push(parsed);
      }
      return true;
    },
  };
  running = await startJitgate(validateConfig(cfg.raw, cfg.file), cfg.file, { logger: createLogger({ level: 'info', destination: 'stdout' }, sink) });
  url = `http://127.0.0.1:${running.listeners.proxy.port}`;
});
afterAll(async () => {
  await running?.close(500);
  await up?.close();
});

const failures = () => lines.filter((l) => l.level === 'error' && /answering a request failed|auditing a forwarded request failed/.test(l.msg));

describe('a throw while answering', () => {
  it('a cached token refused (decided in the same tick): that request is answered, the gate lives on', async () => {
    const token = await tokenNow(keys, { jti: 'cached' });
    expect((await send(url, '/admin/x', { headers: { authorization: `Bearer ${token}` } })).status).toBe(403);
    breakAudit = true;
    try {
      // The refusal is written before its audit line: the client has it, the throw comes after.
      const res = await send(url, '/admin/x', { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(403);
    } finally {
      breakAudit = false;
    }
    expect(failures().at(-1)).toMatchObject({ reason: 'path_not_granted', err: { message: 'SonicBoom destroyed' } });
    expect((await send(url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  });

  it('a token not seen before (a decision that waited), refused and allowed: answered or cut, the gate lives on', async () => {
    breakAudit = true;
    try {
      const refused = await tokenNow(keys, { jti: 'waited-refused' });
      expect((await send(url, '/admin/y', { headers: { authorization: `Bearer ${refused}` } })).status).toBe(403);
      // An allow's line is written when its upstream exchange ends: the client has the answer.
      const allowed = await tokenNow(keys, { jti: 'waited-allowed' });
      expect((await send(url, '/orders/42/a', { headers: { authorization: `Bearer ${allowed}` } })).status).toBe(200);
      await expect.poll(() => failures().length).toBeGreaterThanOrEqual(3);
    } finally {
      breakAudit = false;
    }
    const token = await tokenNow(keys, { jti: 'after' });
    expect((await send(url, '/orders/42/b', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect(lines.filter((l) => l.type === 'audit' && l.path === '/orders/42/b' && l.status === 200)).toHaveLength(1);
  });
});
