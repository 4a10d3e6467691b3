/**
 * Tracing's edges, as a twelfth-round probe found them:
 * - a collector whose host never completes the TCP handshake (SYNs dropped: a firewall, a dead node) held the
 *   drain until the kernel gave up connecting, 121–135 s after SIGTERM whatever tracing.export_timeout said. The
 *   stand-in here is a listener whose accept queue is full and which never accepts, so the kernel drops new SYNs;
 * - a password or an API key in the endpoint URL was written to the log with the "tracing on" line;
 * - an allow turned into a 429 by limits.max_inflight_per_token was audited but had no span.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redactUrl } from '../../src/observability/redact-url.ts';
import { startOtlpReceiver } from '../fixtures/otlp-receiver.ts';
import { send, startGateInProcess, startRecordingUpstream, type RecordingUpstream } from '../fixtures/servers.ts';

/** A listener with a two-place accept queue (backlog 1; node reads 0 as its default, 511) that never accepts: its event loop is parked. */
const STALLED_LISTENER = `
const net = require('node:net');
const server = net.createServer();
server.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
  process.send(server.address().port, () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0));
});
`;

let stalled: ChildProcess;
let port: number;
const fillers: Socket[] = [];
let upstream: RecordingUpstream;

beforeAll(async () => {
  stalled = spawn(process.execPath, ['-e', STALLED_LISTENER], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  [port] = (await once(stalled, 'message')) as [number];
  // Fill the accept queue: these two handshakes complete in the kernel; every later SYN is dropped.
  for (let i = 0; i < 2; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    fillers.push(s);
    await once(s, 'connect');
  }
  upstream = await startRecordingUpstream();
});

afterAll(async () => {
  for (const s of fillers) s.destroy();
  stalled?.kill('SIGKILL');
  await upstream?.close();
});

describe('tracing with a collector that never completes the handshake', () => {
  it('the drain gives the flush export_timeout, then stops (it waited for the kernel, over two minutes)', async () => {
    const g = await startGateInProcess(upstream.url, (c) => {
      c.tracing = { otlp_endpoint: `http://127.0.0.1:${port}/v1/traces`, export_interval: '500ms', export_timeout: '1s' };
    });
    try {
      const token = await g.token();
      expect((await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      // Stop while the first export is still connecting (it starts after export_interval).
      await new Promise((r) => setTimeout(r, 800));
      const started = Date.now();
      await g.close();
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(g.logs.some((l) => l.msg === 'flushing traces at shutdown took longer than tracing.export_timeout; the spans still queued are dropped')).toBe(true);
    } finally {
      await rm(g.dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('the tracing endpoint in the log', () => {
  it('keeps a password and a query out of it', async () => {
    expect(redactUrl('http://user:s3cret@collector:4318/v1/traces?api_key=k3y', true)).toBe('http://***:***@collector:4318/v1/traces?***');
    expect(redactUrl('https://collector:4318/v1/traces', true)).toBe('https://collector:4318/v1/traces');
    // Some collectors take the API key as the user name alone.
    expect(redactUrl('https://K3Y@collector:4318/v1/traces', true)).toBe('https://***@collector:4318/v1/traces');
    const g = await startGateInProcess(upstream.url, (c) => {
      c.tracing = { otlp_endpoint: 'http://user:s3cret@127.0.0.1:9/v1/traces?api_key=k3y' };
    });
    try {
      const line = g.logs.find((l) => l.msg === 'tracing on');
      expect(line?.otlp_endpoint).toBe('http://***:***@127.0.0.1:9/v1/traces?***');
      expect(JSON.stringify(g.logs)).not.toMatch(/s3cret|k3y/);
    } finally {
      await g.close();
      await rm(g.dir, { recursive: true, force: true });
    }
  });
});

describe('a decision the in-flight limit refuses', () => {
  it('has its span, with the 429 the client got', async () => {
    const receiver = await startOtlpReceiver();
    const slow = await startRecordingUpstream();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    slow.respond = (_req, res) => void held.then(() => res.end('ok'));
    const g = await startGateInProcess(slow.url, (c) => {
      c.tracing = { otlp_endpoint: receiver.url, export_interval: '50ms', export_timeout: '1s' };
      c.limits = { max_inflight_per_token: 1 };
    });
    try {
      const token = await g.token();
      const first = send(g.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } });
      await slow.waitFor(1);
      const trace = '0af7651916cd43dd8448eb211c80319c';
      const second = await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${token}`, traceparent: `00-${trace}-b7ad6b7169203331-01` } });
      expect(second.status).toBe(429);
      release();
      expect((await first).status).toBe(200);
      const spans = await receiver.until((all) => all.some((s) => s.traceId === trace));
      expect(spans.find((s) => s.traceId === trace)).toMatchObject({ name: 'jitgate.decision', attributes: { 'jitgate.transport': 'proxy', 'http.response.status_code': 429 } });
    } finally {
      release();
      await g.close();
      await slow.close();
      await receiver.close();
      await rm(g.dir, { recursive: true, force: true });
    }
  });
});
