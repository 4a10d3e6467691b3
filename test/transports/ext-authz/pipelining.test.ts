/**
 * Issue 21 item 9, the same class on the ext_authz HTTP listener: a client that pipelines
 * thousands of checks and reads no answer must not make the gate decide (and buffer answers for)
 * all of them. The service answers from the gate itself, so node's own back-pressure applies: once
 * the queued answers pass the socket's high-water mark it stops reading. Counted in decisions.
 */
import { rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMetrics, send, startGateInProcess, startRecordingUpstream, type InProcessGate, type RecordingUpstream } from '../../fixtures/servers.ts';

let up: RecordingUpstream;
let gate: InProcessGate;

beforeAll(async () => {
  up = await startRecordingUpstream();
  gate = await startGateInProcess(up.url, (c) => {
    c.ext_authz = { http: { listen: { host: '127.0.0.1', port: 0 }, path_prefix: '/authz' } };
  });
});
afterAll(async () => {
  await gate?.close();
  await up?.close();
  if (gate) await rm(gate.dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function granted(): Promise<number> {
  const m = parseMetrics((await send(gate.adminUrl, '/metrics')).text);
  return m.get('jitgate_decisions_total{transport="ext_authz_http",result="allow",reason="granted"}') ?? 0;
}

describe('ext_authz HTTP pipelining', () => {
  it('20,000 pipelined checks from a client that reads nothing: decisions stop at what the socket holds', async () => {
    const http = gate.running.listeners.extAuthz.find((l) => l.name.includes('http'))!;
    const token = await gate.token({ jti: 'pipelined-checks' });
    const s = connect(http.port, '127.0.0.1');
    s.on('error', () => undefined);
    s.pause();
    const one = `GET /authz/orders/42 HTTP/1.1\r\nHost: orders.internal\r\nAuthorization: Bearer ${token}\r\n\r\n`;
    s.write(one.repeat(20_000));
    let decided = -1;
    for (let i = 0; i < 20 && ((await granted()) !== decided || decided <= 0); i++) {
      decided = await granted();
      await sleep(250);
    }
    console.log(`[ext_authz pipelining] 20000 pipelined checks, client not reading: ${decided} decided`);
    await sleep(1000);
    expect(await granted()).toBe(decided);
    expect(decided).toBeLessThan(20_000);
    s.destroy();
  });
});
