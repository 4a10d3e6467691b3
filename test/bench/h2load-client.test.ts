/**
 * The bench's ext_authz rows with h2load (bench/macro/h2load.ts) are only worth their numbers if every answer is
 * counted as what it was: a real h2load (Debian nghttp2-client; .ci/run installs it) against small local servers
 * over HTTP/2 and HTTP/1.1 — the body and headers arrive as given, wrong statuses and failed streams are counted,
 * only answers inside the measured window count, and its temp dir goes away.
 */
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createH2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { h2loadBinary, runH2load, summarize } from '../../bench/macro/h2load.ts';

let binary: string;
let h2: Http2Server;
let h1: Server;
const h2Seen = { calls: 0, badBody: 0, badHeaders: 0 };
let h1Calls = 0;
const BODY = Buffer.from([0, 0, 0, 0, 3, 1, 2, 3]);

beforeAll(async () => {
  const b = h2loadBinary();
  if (b === undefined) throw new Error('h2load is not installed (Debian package nghttp2-client; .ci/run installs it)');
  binary = b;
  h2 = createH2Server();
  h2.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      h2Seen.calls++;
      if (!Buffer.concat(chunks).equals(BODY)) h2Seen.badBody++;
      if (headers['content-type'] !== 'application/grpc' || headers[':method'] !== 'POST') h2Seen.badHeaders++;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
  });
  h2.listen(0, '127.0.0.1');
  await once(h2, 'listening');
  // Every other answer is a 503; a request without the header given is a 400.
  h1 = createHttpServer((req, res) => {
    h1Calls++;
    res.statusCode = req.headers['x-probe'] !== 'yes' ? 400 : h1Calls % 2 === 0 ? 503 : 200;
    res.end();
  });
  h1.listen(0, '127.0.0.1');
  await once(h1, 'listening');
});

afterAll(async () => {
  h2?.close();
  h1?.closeAllConnections();
  await new Promise((resolve) => h1?.close(resolve));
});

const h2loadDirs = async (): Promise<string[]> => (await readdir(tmpdir())).filter((d) => d.startsWith('jitgate-h2load-'));

describe('runH2load against real servers', () => {
  it('over HTTP/2: sends the body and headers given, counts every answer of the measured window as 200', async () => {
    const dirsBefore = await h2loadDirs();
    const order: string[] = [];
    const r = await runH2load(
      {
        binary,
        url: `http://127.0.0.1:${(h2.address() as AddressInfo).port}/envoy.service.auth.v3.Authorization/Check`,
        protocol: 'h2',
        connections: 1,
        streams: 8,
        headers: { 'content-type': 'application/grpc', te: 'trailers' },
        body: BODY,
        expectStatus: 200,
        durationSec: 1,
        warmupSec: 1,
      },
      async () => void order.push('before'),
      async () => void order.push('after'),
    );
    expect(order).toEqual(['before', 'after']);
    expect(h2Seen.badBody).toBe(0);
    expect(h2Seen.badHeaders).toBe(0);
    expect(r.total).toBeGreaterThan(100);
    // Warm-up answers are left out of the measured ones.
    expect(r.total).toBeLessThan(h2Seen.calls);
    expect(r.statuses).toEqual({ 200: r.total });
    expect(r.unexpected).toBe(0);
    expect(r.errors).toBe(0);
    expect(r.rps.samples).toHaveLength(1);
    expect(r.latency.p50).toBeGreaterThan(0);
    expect(await h2loadDirs()).toEqual(dirsBefore);
  });

  it('over HTTP/1.1: a status other than the expected one is counted as unexpected', async () => {
    const r = await runH2load(
      { binary, url: `http://127.0.0.1:${(h1.address() as AddressInfo).port}/orders/small`, protocol: 'h1', connections: 2, streams: 1, headers: { 'x-probe': 'yes' }, expectStatus: 200, durationSec: 1, warmupSec: 0 },
      async () => {},
      async () => {},
    );
    expect(r.total).toBeGreaterThan(10);
    expect(r.statuses['503']).toBeGreaterThan(0);
    expect(r.unexpected).toBe(r.statuses['503']);
    expect(r.statuses['200']! + r.statuses['503']!).toBe(r.total);
  });

  it('fails loudly when h2load cannot run (nothing listens)', async () => {
    const probe = createHttpServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    await expect(
      runH2load({ binary, url: `http://127.0.0.1:${port}/`, protocol: 'h1', connections: 1, streams: 1, headers: {}, expectStatus: 200, durationSec: 1, warmupSec: 0 }, async () => {}, async () => {}),
    ).rejects.toThrow(/h2load got no answers/);
  });
});

describe('summarize (h2load log rows: start µs, status, duration µs)', () => {
  const from = 10_000_000;
  const to = 12_000_000;
  const row = (start: number, status: number, duration: number): string => `${start}\t${status}\t${duration}`;

  it('counts only answers that ended inside the window, by second', () => {
    const tsv = [
      row(from - 500, 200, 400), // ended before the window: warm-up
      row(from - 500, 200, 600), // ended inside
      row(from + 1_500_000, 200, 1000),
      row(to - 100, 200, 200), // ended after
      '',
    ].join('\n');
    const r = summarize(tsv, from, to, 200);
    expect(r.total).toBe(2);
    expect(r.rps.samples).toEqual([1, 1]);
    expect(r.seconds).toBe(2);
  });

  it('gives one sample per whole second even when the observed window is a little short or long', () => {
    // The window's edges are when h2load's lines reached the event loop; under load a 1 s run measured 0.93 s.
    const short = summarize([row(from, 200, 10), row(from + 900_000, 200, 10)].join('\n'), from, from + 930_000, 200);
    expect(short.rps.samples).toHaveLength(1);
    expect(short.rps.samples[0]).toBeCloseTo(2 / 0.93, 6);
    const long = summarize([row(from, 200, 10), row(from + 2_040_000, 200, 10)].join('\n'), from, from + 2_060_000, 200);
    expect(long.rps.samples).toHaveLength(2);
    expect(long.rps.samples[0]).toBeCloseTo(1 / 1.03, 6);
    expect(long.rps.samples[1]).toBeCloseTo(1 / 1.03, 6);
    expect(summarize(row(from, 200, 10), from, from, 200).rps.samples).toEqual([]);
  });

  it('leaves out streams cut by the end of the run (status 0)', () => {
    const r = summarize([row(from, 200, 10), row(from + 5, 0, 10)].join('\n'), from, to, 200);
    expect(r.total).toBe(1);
    expect(r.statuses).toEqual({ 200: 1 });
    expect(r.unexpected).toBe(0);
  });

  it('counts failed streams as errors and other statuses as unexpected', () => {
    const tsv = [row(from, 200, 10), row(from, -1, 10), row(from, 503, 10), row(from, 200, 10)].join('\n');
    const r = summarize(tsv, from, to, 200);
    expect(r.total).toBe(4);
    expect(r.errors).toBe(1);
    expect(r.unexpected).toBe(1);
    expect(r.statuses).toEqual({ 200: 2, 503: 1 });
  });
});
