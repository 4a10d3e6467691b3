/**
 * Bytes node:http refuses, arriving on a connection whose earlier request was already answered (a
 * re-probe, 2026-12-07: node sets the socket's `_httpMessage` to null once an answer is finished,
 * and the refusal handler read a property of it — an uncaught TypeError that ended the gate, for a
 * client with no token at all). Each case: the gate answers or closes that one connection and keeps
 * serving everyone else; on every listener that parses HTTP/1.1 (the proxy, ext_authz HTTP).
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startGateWithUpstream, type InProcessGate, type RecordingUpstream } from '../fixtures/servers.ts';

let up: RecordingUpstream;
let gate: InProcessGate;
let extAuthzUrl: string;

beforeAll(async () => {
  ({ up, gate } = await startGateWithUpstream((c) => {
    c.ext_authz = { http: { listen: { host: '127.0.0.1', port: 0 } } };
  }));
  const l = gate.running.listeners.extAuthz.find((x) => x.name === 'ext_authz_http')!;
  extAuthzUrl = `http://127.0.0.1:${l.port}`;
});
afterAll(async () => {
  await gate?.close();
  await up?.close();
});

/** Writes `first`, waits for its whole answer, then writes `second`; resolves with all it read once closed. */
function twoSteps(url: string, first: string, second: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname);
    let got = '';
    let sent = false;
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      got += d;
      // The first answer is whole (a JSON body closes it); now the bytes node refuses.
      if (!sent && got.includes('}')) {
        sent = true;
        s.write(second);
      }
    });
    s.on('error', () => {});
    s.on('close', () => resolve(got));
    s.on('connect', () => s.write(first));
    setTimeout(() => reject(new Error(`no close; read ${JSON.stringify(got)}`)), 10_000).unref();
  });
}

describe('a refused request after an answered one on the same connection', () => {
  it.each([
    ['the proxy', () => gate.url, 'GET /orders/42 HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['ext_authz HTTP', () => extAuthzUrl, 'GET /orders/42 HTTP/1.1\r\nHost: a\r\n\r\n'],
  ])('%s: a 401, then garbage → that connection gets a 400 and is closed; the gate keeps serving', async (_name, url, first) => {
    const got = await twoSteps(url(), first, 'zz garbage\r\n\r\n');
    expect(got.match(/HTTP\/1\.1 \d{3}/g)).toEqual(['HTTP/1.1 401', 'HTTP/1.1 400']);
    expect((await send(gate.url, '/public/x')).status).not.toBe(0);
    expect((await send(gate.adminUrl, '/healthz')).status).toBe(200);
  });

  it('the proxy: a 401, then a request whose head is too large → 431; the gate keeps serving', async () => {
    const got = await twoSteps(gate.url, 'GET /orders/42 HTTP/1.1\r\nHost: a\r\n\r\n', `GET /orders/42 HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`);
    expect(got.match(/HTTP\/1\.1 \d{3}/g)).toEqual(['HTTP/1.1 401', 'HTTP/1.1 431']);
    expect((await send(gate.adminUrl, '/healthz')).status).toBe(200);
  });
});
