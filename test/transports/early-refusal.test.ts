/**
 * SPEC §8 "one audit line per decision" for the refusals node:http makes before jitgate's handler
 * runs (src/transports/early-refusal.ts): CONNECT and a request line the parser rejects (also one
 * whose method is no token) get an audit line and a count; bytes that are not a request line (a TLS handshake on the plain port,
 * a scanner) and a bare connect-and-close get the count at most, never a line.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestLineMethod } from '../../src/transports/early-refusal.ts';
import { parseMetrics, send, sendRaw, startGateInProcess, startRecordingUpstream, type InProcessGate, type RecordingUpstream } from '../fixtures/servers.ts';

let up: RecordingUpstream;
let gate: InProcessGate;

beforeAll(async () => {
  up = await startRecordingUpstream();
  gate = await startGateInProcess(up.url);
});
afterAll(async () => {
  await gate?.close();
  await up?.close();
});

const audits = () => gate.logs.filter((l) => l.type === 'audit' && l.transport === 'proxy');
async function count(reason: string): Promise<number> {
  const res = await send(gate.adminUrl, '/metrics');
  return parseMetrics(res.text).get(`jitgate_decisions_total{transport="proxy",result="deny",reason="${reason}"}`) ?? 0;
}
/** Writes raw bytes, resolves with everything the gate answered once it closes. */
function exchange(bytes: string | Buffer): Promise<string> {
  const u = new URL(gate.url);
  return new Promise((resolve, reject) => {
    let got = '';
    const s = connect(Number(u.port), u.hostname, () => s.write(bytes));
    s.on('data', (c: Buffer) => (got += c.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => resolve(got));
  });
}
/** The audit lines written after `from`, once the answer is in (lines are written synchronously with it). */
const since = (from: number) => audits().slice(from);

describe('proxy: refusals made by node:http before the decision', () => {
  it.each([
    ['CONNECT', 'connect_method', ['CONNECT orders.internal:443 HTTP/1.1', 'Host: orders.internal:443']],
    ['FOO', 'bad_request', ['FOO /orders/42 HTTP/1.1', 'Host: orders.internal']],
    ['get', 'bad_request', ['get /orders/42 HTTP/1.1', 'Host: orders.internal']],
    // The parser refuses the line; the reason is the one the decision core gives the same target (SPEC §3).
    ['GET', 'path_control_char', ['GET /orders/4 2 HTTP/1.1', 'Host: orders.internal']],
    ['GET', 'path_control_char', ['GET /orders/caf\u00e9 HTTP/1.1', 'Host: orders.internal']],
    ['GET', 'path_control_char', ['GET /orders/4\t2 HTTP/1.1', 'Host: orders.internal']],
    ['GET', 'bad_request_target', ['GET orders.internal:80 HTTP/1.1', 'Host: orders.internal']],
    ['FOO', 'path_dot_segment', ['FOO /orders/../admin HTTP/1.1', 'Host: orders.internal']],
    // A fault after the line (a header name with a space) keeps the parser's plain reason.
    ['GET', 'bad_request', ['GET /orders/4%202 HTTP/1.1', 'Host: orders.internal', 'Bad Header: x']],
  ])('%s → 400 %s with one audit line (proxy, 400, reason, method, client; no token) and one count', async (method, reason, head) => {
    const before = await count(reason as string);
    const from = audits().length;
    const r = await sendRaw(gate.url, [...(head as string[]), `Authorization: Bearer ${await gate.token()}`]);
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text).reason).toBe(reason);
    const lines = since(from);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ transport: 'proxy', decision: 'deny', reason, status: 400, method, client: '127.0.0.1' });
    // Nothing was parsed: no token fields, no path.
    for (const field of ['jti', 'sub', 'iss', 'txn', 'grant']) expect(lines[0]).not.toHaveProperty(field);
    expect(lines[0]!.path ?? null).toBeNull();
    expect(await count(reason as string)).toBe(before + 1);
  });

  it('a method that is not a token (`G(T`) → 400 bad_method, a count and one audit line naming the method as sent', async () => {
    // Until a probe compared the count with the trail, this refusal was counted and never audited;
    // ext_authz gRPC and forward-auth audit the same refusal with the method as sent.
    const before = await count('bad_method');
    const from = audits().length;
    const answer = await exchange('G(T /orders/42 HTTP/1.1\r\nHost: orders.internal\r\n\r\n');
    expect(answer.startsWith('HTTP/1.1 400 ')).toBe(true);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).reason).toBe('bad_method');
    expect(await count('bad_method')).toBe(before + 1);
    const lines = since(from);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ transport: 'proxy', decision: 'deny', reason: 'bad_method', status: 400, method: 'G(T', client: '127.0.0.1' });
    // A long one is cut at 64 characters: one request must not make a 15 KB audit line (a re-probe).
    const from2 = audits().length;
    await exchange(`${'G('.repeat(7000)} /orders/42 HTTP/1.1\r\nHost: orders.internal\r\n\r\n`);
    expect(since(from2).map((l) => l.method)).toEqual([`${'G('.repeat(32)}…`]);
  });

  it('a TLS ClientHello on the plain port → 400 bad_request and a count, but no audit line (not a request line)', async () => {
    const before = await count('bad_request');
    const from = audits().length;
    const hello = Buffer.from('16030100a5010000a10303' + '00'.repeat(40), 'hex');
    expect((await exchange(hello)).startsWith('HTTP/1.1 400 ')).toBe(true);
    expect(await count('bad_request')).toBe(before + 1);
    expect(since(from)).toEqual([]);
  });

  it('a scanner line that is not HTTP (`HELP\\r\\n`) → answered and counted, no audit line', async () => {
    const before = await count('bad_request');
    const from = audits().length;
    expect((await exchange('HELP\r\n\r\n')).startsWith('HTTP/1.1 400 ')).toBe(true);
    expect(await count('bad_request')).toBe(before + 1);
    expect(since(from)).toEqual([]);
  });

  it('a connection opened and closed without a byte → no answer, no count, no audit line', async () => {
    const from = audits().length;
    const before = await count('bad_request');
    await new Promise<void>((resolve, reject) => {
      const u = new URL(gate.url);
      const s = connect(Number(u.port), u.hostname, () => s.end());
      s.on('error', reject);
      s.on('close', () => resolve());
    });
    // A later request's line lands after anything this connection could have caused.
    await send(gate.url, '/orders/42');
    expect(since(from).map((l) => l.reason)).toEqual(['missing_token']);
    expect(await count('bad_request')).toBe(before);
  });
});

describe('requestLineMethod', () => {
  it.each([
    ['FOO /x HTTP/1.1\r\nHost: a\r\n\r\n', 'FOO'],
    ['get / HTTP/1.0\r\n', 'get'],
    ['CONNECT a:443 HTTP/1.1\n', 'CONNECT'],
    ['GET /x HTTP/1.1\r\nBad Header\r\n\r\n', 'GET'],
  ])('%j → %s', (bytes, method) => {
    expect(requestLineMethod(Buffer.from(bytes, 'latin1'))).toBe(method);
  });

  it.each([
    ['no line end yet', 'GET /x HTTP/1.1'],
    ['no version', 'GET /x\r\n'],
    ['no target', 'GET HTTP/1.1\r\n'],
    ['not a token method', 'G\u00e9T /x HTTP/1.1\r\n'],
    ['method over 32 characters', `${'A'.repeat(33)} /x HTTP/1.1\r\n`],
    ['a space first', ' /x HTTP/1.1\r\n'],
    ['binary', '\u0016\u0003\u0001\u0000'],
  ])('%s → undefined', (_why, bytes) => {
    expect(requestLineMethod(Buffer.from(bytes, 'latin1'))).toBeUndefined();
  });

  it('not a buffer (a timeout has no packet) → undefined', () => {
    expect(requestLineMethod(undefined)).toBeUndefined();
  });
});
