/**
 * OpenTelemetry tracing end to end: a real gate with `tracing` on, the official OTLP/HTTP exporter,
 * and a real receiver on loopback decoding what it sends. The W3C context is taken from the
 * request and continued upstream; one span per decision (proxy, ext_authz HTTP and gRPC,
 * forward-auth) and per upstream exchange; never the token; a dead or hung collector costs no
 * request; with tracing off no OpenTelemetry module is even imported.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.ts';
import { assertRefusedPort, REFUSED_PORT } from '../fixtures/ports.ts';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../fixtures/otlp-receiver.ts';
import { send, startGateInProcess, startRecordingUpstream, type InProcessGate, type RecordingUpstream } from '../fixtures/servers.ts';
import { checkRequest, GrpcClient, httpCall } from '../transports/ext-authz/helpers.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE}-${CLIENT_SPAN}-01`;

function withTracing(endpoint: string, extra: Record<string, unknown> = {}) {
  return (c: Record<string, any>) => {
    c.tracing = { otlp_endpoint: endpoint, service_name: 'jitgate-test', export_interval: '50ms', export_timeout: '1s', ...extra };
    c.ext_authz = {
      http: { listen: { host: '127.0.0.1', port: 0 }, path_prefix: '/authz' },
      grpc: { listen: { host: '127.0.0.1', port: 0 } },
      forward_auth: { path: '/forward-auth', trusted_proxies: ['127.0.0.1/32'] },
    };
  };
}

const port = (g: InProcessGate, name: string) => g.running.listeners.extAuthz.find((l) => l.name === name)!.port;
const ofTrace = (spans: ReceivedSpan[], trace: string) => spans.filter((s) => s.traceId === trace);

describe('tracing on: spans reach a real OTLP/HTTP receiver', () => {
  let receiver: OtlpReceiver;
  let upstream: RecordingUpstream;
  let g: InProcessGate;
  let token = '';

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    upstream = await startRecordingUpstream();
    g = await startGateInProcess(upstream.url, withTracing(receiver.url));
    token = await g.token({ jti: 'trace-jti-1', txn: 'trace-txn' });
  });

  afterAll(async () => {
    await g?.close();
    await upstream?.close();
    await receiver?.close();
    if (g !== undefined) await rm(g.dir, { recursive: true, force: true });
  });

  it('proxy allow: decision span under the client span, exchange span under it, the backend continues the trace', async () => {
    const r = await send(g.url, '/orders/42/items?x=1', { headers: { authorization: `Bearer ${token}`, traceparent: TRACEPARENT, tracestate: 'vendor=abc' } });
    expect(r.status).toBe(200);
    const seen = upstream.requests.at(-1)!;
    const spans = ofTrace(await receiver.until((s) => ofTrace(s, TRACE).length >= 2), TRACE);
    const decision = spans.find((s) => s.name === 'jitgate.decision')!;
    const exchange = spans.find((s) => s.name === 'jitgate.upstream')!;
    expect(decision.service).toBe('jitgate-test');
    expect(decision.parentSpanId).toBe(CLIENT_SPAN);
    expect(decision.kind).toBe(2); // SERVER
    expect(decision.attributes).toEqual({
      'jitgate.transport': 'proxy',
      'jitgate.decision': 'allow',
      'jitgate.reason': 'granted',
      'jitgate.issuer': 'https://broker.internal',
      'jitgate.grant_entry': 0,
      'http.request.method': 'GET',
      'url.path': '/orders/42/items',
    });
    expect(decision.endNs).toBeGreaterThanOrEqual(decision.startNs);
    expect(exchange.parentSpanId).toBe(decision.spanId);
    expect(exchange.kind).toBe(3); // CLIENT
    expect(exchange.attributes).toMatchObject({ 'http.request.method': 'GET', 'http.response.status_code': 200, 'jitgate.upstream.outcome': 'ok' });
    // Exactly one traceparent upstream: the exchange span's, sampled, and the client's tracestate kept.
    const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names.filter((n) => n === 'traceparent')).toHaveLength(1);
    expect(seen.headers.traceparent).toBe(`00-${TRACE}-${exchange.spanId}-01`);
    expect(seen.headers.tracestate).toBe('vendor=abc');
  });

  it('proxy deny: a decision span with the reason and the status; nothing upstream', async () => {
    const trace = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1';
    const before = upstream.requests.length;
    const r = await send(g.url, '/orders/43', { headers: { authorization: `Bearer ${token}`, traceparent: `00-${trace}-${CLIENT_SPAN}-01` } });
    expect(r.status).toBe(403);
    const [span] = ofTrace(await receiver.until((s) => ofTrace(s, trace).length >= 1), trace);
    expect(span!.attributes).toMatchObject({ 'jitgate.decision': 'deny', 'jitgate.reason': 'path_not_granted', 'jitgate.issuer': 'https://broker.internal', 'http.response.status_code': 403 });
    expect(span!.attributes).not.toHaveProperty('jitgate.grant_entry');
    expect(upstream.requests.length).toBe(before);
  });

  it('no traceparent: a new root trace, still continued upstream', async () => {
    const before = receiver.spans.length;
    expect((await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    const tp = upstream.requests.at(-1)!.headers.traceparent as string;
    expect(tp).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const trace = tp.split('-')[1]!;
    const spans = ofTrace(await receiver.until((s) => s.length > before && ofTrace(s, trace).length >= 2), trace);
    expect(spans.find((s) => s.name === 'jitgate.decision')!.parentSpanId).toBe('');
  });

  it('ext_authz HTTP and forward-auth: a decision span under the check request\'s traceparent', async () => {
    const t1 = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb1';
    const t2 = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2';
    const http = port(g, 'ext_authz_http');
    const a = await httpCall(http, 'GET', '/authz/orders/42', ['host', 'orders.internal', 'authorization', `Bearer ${token}`, 'traceparent', `00-${t1}-${CLIENT_SPAN}-01`]);
    expect(a.status).toBe(200);
    const f = await httpCall(http, 'GET', '/forward-auth', ['host', 'orders.internal', 'authorization', `Bearer ${token}`, 'x-forwarded-method', 'DELETE', 'x-forwarded-uri', '/orders/42', 'traceparent', `00-${t2}-${CLIENT_SPAN}-01`]);
    expect(f.status).toBe(403);
    const spans = await receiver.until((s) => ofTrace(s, t1).length === 1 && ofTrace(s, t2).length === 1);
    expect(ofTrace(spans, t1)[0]).toMatchObject({ parentSpanId: CLIENT_SPAN, attributes: { 'jitgate.transport': 'ext_authz_http', 'jitgate.decision': 'allow', 'http.response.status_code': 200 } });
    expect(ofTrace(spans, t2)[0]).toMatchObject({ parentSpanId: CLIENT_SPAN, attributes: { 'jitgate.transport': 'forward_auth', 'jitgate.reason': 'method_not_granted', 'http.request.method': 'DELETE' } });
  });

  it('ext_authz gRPC: a decision span under the traceparent in the call metadata', async () => {
    const t = 'ccccccccccccccccccccccccccccccc1';
    const client = new GrpcClient(port(g, 'ext_authz_grpc'));
    try {
      const res = await client.check(checkRequest('GET', '/orders/42', { authorization: `Bearer ${token}` }), { traceparent: `00-${t}-${CLIENT_SPAN}-01` });
      expect(res.status?.code).toBe(0);
    } finally {
      client.close();
    }
    const [span] = ofTrace(await receiver.until((s) => ofTrace(s, t).length === 1), t);
    expect(span).toMatchObject({ parentSpanId: CLIENT_SPAN, kind: 2, attributes: { 'jitgate.transport': 'ext_authz_grpc', 'jitgate.decision': 'allow', 'jitgate.grant_entry': 0 } });
  });

  it('nothing exported ever contains the token, its subject or its id; the exporter speaks OTLP JSON', () => {
    expect(receiver.bodies.length).toBeGreaterThan(0);
    for (const body of receiver.bodies) {
      expect(body).not.toContain(token);
      expect(body).not.toContain(token.split('.')[2]!);
      expect(body).not.toContain('trace-jti-1');
      expect(body).not.toContain('spiffe://prod/ci-deployer');
      expect(body).not.toContain('trace-txn');
    }
    expect(new Set(receiver.contentTypes)).toEqual(new Set(['application/json']));
  });
});

describe('tracing: sampling follows sample_ratio and the caller\'s sampled flag', () => {
  let receiver: OtlpReceiver;
  let upstream: RecordingUpstream;
  let g: InProcessGate;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    upstream = await startRecordingUpstream();
    g = await startGateInProcess(upstream.url, withTracing(receiver.url, { sample_ratio: 0 }));
  });
  afterAll(async () => {
    await g?.close();
    await upstream?.close();
    await receiver?.close();
    if (g !== undefined) await rm(g.dir, { recursive: true, force: true });
  });

  it('ratio 0: a new trace is not recorded but still propagated unsampled; a sampled parent is recorded', async () => {
    const token = await g.token();
    expect((await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect(upstream.requests.at(-1)!.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    const t = 'ddddddddddddddddddddddddddddddd1';
    expect((await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${token}`, traceparent: `00-${t}-${CLIENT_SPAN}-01` } })).status).toBe(200);
    await receiver.until((s) => ofTrace(s, t).length === 2);
    // Everything exported belongs to the sampled trace: the unsampled request left no span.
    expect(receiver.spans.every((s) => s.traceId === t)).toBe(true);
  });
});

describe('tracing: a collector that is down or hangs never fails or holds a request', () => {
  let upstream: RecordingUpstream;
  let hung: Server;
  let hungRequests = 0;

  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    hung = createServer(() => void hungRequests++); // reads the export, never answers
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    await upstream?.close();
    hung.closeAllConnections();
    await new Promise<void>((r) => hung.close(() => r()));
  });

  it.each([
    ['down (connection refused)', async () => (await assertRefusedPort(), `http://127.0.0.1:${REFUSED_PORT}/v1/traces`)],
    ['hung (never answers)', async () => `http://127.0.0.1:${(hung.address() as AddressInfo).port}/v1/traces`],
  ])('collector %s: every request answered as without tracing', async (what, endpoint) => {
    const g = await startGateInProcess(upstream.url, withTracing(await endpoint(), { export_timeout: '300ms', max_queue_size: 16 }));
    try {
      const token = await g.token();
      for (let i = 0; i < 3; i++) {
        const statuses = await Promise.all(Array.from({ length: 40 }, (_, j) => send(g.url, j % 2 === 0 ? '/orders/42' : '/orders/43', { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status)));
        expect(statuses.filter((s) => s === 200)).toHaveLength(20);
        expect(statuses.filter((s) => s === 403)).toHaveLength(20);
        await new Promise((r) => setTimeout(r, 100)); // let an export run (and fail) between bursts
      }
      if (what.startsWith('hung')) expect(hungRequests).toBeGreaterThan(0);
      else {
        const warned = () => g.logs.some((l) => l.msg === 'trace export failed; spans dropped (requests are unaffected)');
        for (let i = 0; i < 40 && !warned(); i++) await new Promise((r) => setTimeout(r, 50));
        expect(warned()).toBe(true);
      }
    } finally {
      await g.close();
      await rm(g.dir, { recursive: true, force: true });
    }
  });
});

describe('tracing off', () => {
  it('the client\'s traceparent passes through untouched (no span, no rewrite)', async () => {
    const upstream = await startRecordingUpstream();
    const g = await startGateInProcess(upstream.url);
    try {
      const token = await g.token();
      expect((await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${token}`, traceparent: TRACEPARENT } })).status).toBe(200);
      expect(upstream.requests.at(-1)!.headers.traceparent).toBe(TRACEPARENT);
    } finally {
      await g.close();
      await upstream.close();
      await rm(g.dir, { recursive: true, force: true });
    }
  });

  it('only src/observability/tracing.ts imports OpenTelemetry, and only runtime.ts loads it, lazily', async () => {
    const src = fileURLToPath(new URL('../../src/', import.meta.url));
    const files = (await readdir(src, { recursive: true })).filter((f) => f.endsWith('.ts'));
    const importers: string[] = [];
    const loaders: string[] = [];
    for (const f of files) {
      const text = await readFile(join(src, f), 'utf8');
      if (/from '@opentelemetry\//.test(text)) importers.push(f);
      if (/tracing\.ts'/.test(text.replace(/trace-hooks\.ts'/g, ''))) loaders.push(f);
      // A static import of tracing.ts would load the SDK for every gate.
      expect(text).not.toMatch(/^import [^;]*observability\/tracing\.ts'/m);
    }
    expect(importers).toEqual([join('observability', 'tracing.ts')]);
    expect(loaders).toEqual(['runtime.ts']);
    expect(await readFile(join(src, 'runtime.ts'), 'utf8')).toContain("await import('./observability/tracing.ts')");
  });
});

describe('tracing config', () => {
  const base = { upstream: { url: 'http://127.0.0.1:9' }, service: { audience: 'orders' }, issuers: [{ issuer: 'https://broker.internal', jwks_file: './jwks.json', algorithms: ['ES256'] }] };
  const problems = (tracing: unknown): string => {
    try {
      validateConfig({ ...base, tracing }, '/etc/jitgate/jitgate.yaml');
      return '';
    } catch (err) {
      return (err as Error).message;
    }
  };

  it('defaults everything but the endpoint; absent means off', () => {
    expect(validateConfig(base, '/etc/jitgate/jitgate.yaml').tracing).toBeUndefined();
    expect(validateConfig({ ...base, tracing: { otlp_endpoint: 'http://collector:4318/v1/traces' } }, '/etc/jitgate/jitgate.yaml').tracing).toEqual({
      otlp_endpoint: 'http://collector:4318/v1/traces',
      sample_ratio: 1,
      service_name: 'jitgate',
      headers: {},
      max_queue_size: 2048,
      export_interval: 5000,
      export_timeout: 10000,
    });
  });

  it.each([
    [{ sample_ratio: 0.5 }, 'tracing.otlp_endpoint'],
    [{ otlp_endpoint: 'grpc://collector:4317' }, 'tracing.otlp_endpoint'],
    [{ otlp_endpoint: 'http://c/v1/traces', sample_ratio: 1.5 }, 'tracing.sample_ratio'],
    [{ otlp_endpoint: 'http://c/v1/traces', max_queue_size: 0 }, 'tracing.max_queue_size'],
    [{ otlp_endpoint: 'http://c/v1/traces', export_interval: 'soon' }, 'tracing.export_interval'],
    [{ otlp_endpoint: 'http://c/v1/traces', sampler: 'always' }, 'tracing.sampler'],
    // Accepted before, then: serve died with an OpenTelemetry stack trace (0ms), or every export failed (headers).
    [{ otlp_endpoint: 'http://c/v1/traces', export_timeout: '0ms' }, 'tracing.export_timeout: must be more than 0'],
    [{ otlp_endpoint: 'http://c/v1/traces', export_interval: '0s' }, 'tracing.export_interval: expected at least 10ms'],
    [{ otlp_endpoint: 'http://c/v1/traces', headers: { 'bad header': 'v' } }, 'a header name is a token'],
    [{ otlp_endpoint: 'http://c/v1/traces', headers: { 'x-crlf': 'a\r\nb' } }, 'tracing.headers.x-crlf: a header value may not hold a control character'],
  ])('%j is refused, naming %s', (tracing, key) => {
    expect(problems(tracing)).toContain(key);
  });
});
