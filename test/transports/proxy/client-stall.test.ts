/**
 * A client that stops reading its answer (nginx `send_timeout`), against a real upstream on loopback.
 *
 * While the gate waits for a client's socket to drain, undici's upstream body timeout does not run
 * (the upstream is paused), so a client that sent a GET for a large answer and never read held one
 * upstream pool connection for as long as it stayed connected: 192 of them (3 tokens × 64 in flight)
 * against a pool of 128 answered every other proxied request 504, public routes included. Now an
 * exchange whose client took no response byte for `upstream.body_timeout` is cut when another
 * request waits for a pool slot: the upstream request is aborted (its pool connection freed) and
 * the exchange is audited as `client_stalled`. Without contention it is left alone (a first version
 * cut by time alone, and a re-probe saw downloads read at 32 KB/s cut), and a client that reads
 * slowly but steadily is never cut.
 */
import { rm } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { answerOk, parseMetrics, send, startGateInProcess, startRecordingUpstream, type InProcessGate, type RecordingUpstream } from '../../fixtures/servers.ts';

const open: Array<{ close(): Promise<void> | void }> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Far more than every socket buffer on the way holds: the gate must wait for the client. */
const BIG = 256 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'b');

/** How one big answer went on the upstream's side. */
interface Streamed {
  sent: number;
  /** The connection closed before the whole body was written (the gate aborted it). */
  cut: boolean;
  readonly closed: Promise<void>;
}

/** `/…/big` answers BIG bytes (Content-Length), written as fast as the gate takes them; other paths answer small. */
function streamBig(up: RecordingUpstream): Streamed[] {
  const streams: Streamed[] = [];
  up.respond = (req, res, rec) => {
    if (!req.url!.endsWith('/big')) return answerOk(req, res, rec);
    let closed!: () => void;
    const s: Streamed = { sent: 0, cut: false, closed: new Promise<void>((r) => (closed = r)) };
    streams.push(s);
    res.on('close', () => {
      s.cut = s.sent < BIG;
      closed();
    });
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG) });
    const pump = (r: ServerResponse): void => {
      while (!r.destroyed && s.sent < BIG) {
        s.sent += CHUNK.length;
        if (!r.write(CHUNK)) {
          r.once('drain', () => pump(r));
          return;
        }
      }
      if (s.sent >= BIG && !r.destroyed) r.end();
    };
    pump(res);
  };
  return streams;
}

async function setup(bodyTimeout: string): Promise<{ up: RecordingUpstream; gate: InProcessGate; streams: Streamed[] }> {
  const up = await startRecordingUpstream();
  open.push(up);
  const streams = streamBig(up);
  // One pool connection: a stalled client that kept it would leave every other request waiting for it.
  const gate = await startGateInProcess(up.url, (c) => {
    c.upstream = { url: c.upstream.url, connections: 1, connect_timeout: '500ms', body_timeout: bodyTimeout };
  });
  open.push({ close: async () => (await gate.close(), await rm(gate.dir, { recursive: true, force: true })) });
  return { up, gate, streams };
}

function socketTo(url: string, readableHighWaterMark?: number): Socket {
  const u = new URL(url);
  const s = connect({ port: Number(u.port), host: u.hostname, ...(readableHighWaterMark === undefined ? {} : { readableHighWaterMark }) });
  s.on('error', () => undefined);
  open.push({ close: () => void s.destroy() });
  return s;
}

async function until<T>(what: string, ms: number, probe: () => T | undefined): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (performance.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(20);
  }
}

async function metric(gate: InProcessGate, name: string): Promise<number> {
  return parseMetrics((await send(gate.adminUrl, '/metrics')).text).get(name) ?? 0;
}

describe('a client that stops reading its answer (send timeout)', () => {
  it('a public GET for a large answer, never read: left alone while nobody waits; cut, upstream aborted, audited client_stalled once a request waits for its pool connection', async () => {
    const { up, gate, streams } = await setup('500ms');
    const s = socketTo(gate.url);
    s.pause(); // reads nothing, ever (until the end of the test)
    s.write('GET /public/big HTTP/1.1\r\nHost: orders.internal\r\n\r\n');
    await until('upstream answering', 2000, () => (streams[0] !== undefined ? true : undefined));

    // Stalled for three times upstream.body_timeout, with nobody waiting: not cut.
    await sleep(1500);
    expect(gate.logs.filter((l) => l.type === 'audit')).toEqual([]);
    expect(streams[0]!.cut).toBe(false);

    // (b) a request that needs the only pool connection: the stalled exchange gives it up at once,
    // where before it waited the 500ms pool wait and got 504, for as long as the client stayed.
    const t = await gate.token({ jti: 'after-stall' });
    // (Before, it waited the pool's 500 ms and got a 504: the status alone tells them apart.)
    const r = await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${t}` } });
    expect(r.status).toBe(200);
    expect(up.requests).toHaveLength(2);
    await until('upstream answer cut', 2000, () => (streams[0]?.cut === true ? true : undefined));
    expect(streams[0]!.sent).toBeLessThan(BIG);

    // (c) the stalled exchange ended with an audit line naming the outcome
    const line = gate.logs.find((l) => l.type === 'audit' && l.path === '/public/big');
    expect(line?.reason).toBe('client_stalled');
    expect(line?.status).toBe(200); // the head had gone out: the upstream's status
    expect(await metric(gate, 'jitgate_limit_refusals_total{limit="client_stalled"}')).toBe(1);

    // (a) the client's connection was closed: reading now, it sees the end of a truncated answer
    let got = 0;
    s.on('data', (d: Buffer) => (got += d.length));
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    s.resume();
    await Promise.race([closed, sleep(5000).then(() => Promise.reject(new Error('client connection still open 5 s after the cut')))]);
    expect(got).toBeGreaterThan(0);
    expect(got).toBeLessThan(BIG);
  });

  it('a client that reads every 200 ms, pausing in between, is not cut at upstream.body_timeout 1s', async () => {
    const { gate, streams } = await setup('1s');
    const t = await gate.token({ jti: 'slow-reader' });
    // Up to 1 MiB per read: Linux reports the gate's socket writable again only once about half of
    // its send buffer (up to 4 MiB on loopback) is free, so that is the step in which the gate sees
    // a reader make progress; a reader must take that much within the timeout.
    const s = socketTo(gate.url, 1 << 20);
    let got = 0;
    let closed = false;
    s.once('close', () => (closed = true));
    const reader = setInterval(() => {
      for (let d = s.read() as Buffer | null; d !== null; d = s.read() as Buffer | null) got += d.length;
    }, 200);
    open.push({ close: () => clearInterval(reader) });
    s.write(`GET /orders/42/big HTTP/1.1\r\nHost: orders.internal\r\nAuthorization: Bearer ${t}\r\n\r\n`);

    await sleep(2500);
    const before = got;
    await sleep(1500); // 4 s in all: four times the timeout
    console.log(`[stall] reader pausing 200 ms between reads: ${got} bytes in 4 s, upstream sent ${streams[0]?.sent ?? 0}`);
    expect(got).toBeGreaterThan(before); // still receiving at the end
    expect(closed).toBe(false);
    expect(streams[0]!.cut).toBe(false);
    // The gate did wait on this client: the upstream was held back far below its answer's size.
    expect(streams[0]!.sent).toBeLessThan(BIG / 2);
    expect(gate.logs.filter((l) => l.type === 'audit')).toEqual([]);
    expect(await metric(gate, 'jitgate_limit_refusals_total{limit="client_stalled"}')).toBe(0);
  });
});
