/**
 * Shared fixtures for the ext_authz transport tests: a TransportContext over a real Gate with
 * in-memory audit lines and a private metrics registry, a grpc-js client built from jitgate's own
 * protos (so the bytes on the wire are exactly what the field numbers say), and a small HTTP
 * client that can bind its local address (to be a trusted or an untrusted proxy).
 */
import { request } from 'node:http';
import { credentials, loadPackageDefinition, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { createLogger } from '../../../src/observability/logger.ts';
import { AuditLog } from '../../../src/observability/audit.ts';
import { Metrics, type Transport } from '../../../src/observability/metrics.ts';
import type { Listener, TransportContext } from '../../../src/transports/context.ts';
import { startExtAuthz } from '../../../src/transports/ext-authz/index.ts';
import { PROTO_DIR } from '../../../src/transports/ext-authz/protos.ts';
import type { KeyState } from '../../../src/keys/issuer-keys.ts';
import { makeGate, makeTestKeys, type TestGate, type TestKeys } from '../../fixtures/gate.ts';
import { rawCheckClient } from '../../fixtures/grpc-raw.ts';

export interface AuditLine {
  readonly type: string;
  readonly transport: string;
  readonly decision: string;
  readonly reason: string;
  readonly status: number;
  readonly method: string;
  readonly path: string | null;
  readonly sub?: string;
  readonly jti?: string;
  readonly iss?: string;
  readonly txn?: string;
  readonly grant?: number;
}

export interface Harness extends TestGate {
  readonly ctx: TransportContext;
  readonly audit: AuditLine[];
  readonly logs: Record<string, unknown>[];
  readonly listeners: Listener[];
  readonly httpPort: number;
  readonly grpcPort: number;
  close(): Promise<void>;
}

/** ext_authz config used unless a test patches it: both services plus forward-auth on loopback. */
export function extAuthzConfig(c: Record<string, any>): void {
  c.ext_authz = {
    http: { listen: { host: '127.0.0.1', port: 0 }, path_prefix: '/authz' },
    grpc: { listen: { host: '127.0.0.1', port: 0 } },
    forward_auth: { path: '/forward-auth', trusted_proxies: ['127.0.0.1/32'] },
  };
}

export async function makeContext(t: TestGate): Promise<{ ctx: TransportContext; audit: AuditLine[]; logs: Record<string, unknown>[] }> {
  const audit: AuditLine[] = [];
  const logs: Record<string, unknown>[] = [];
  const stream = {
    write(s: string) {
      const line = JSON.parse(s) as Record<string, unknown>;
      if (line.type === 'audit') audit.push(line as unknown as AuditLine);
      else logs.push(line);
    },
  };
  const logger = createLogger({ level: 'info', destination: 'stdout' }, stream);
  const ctx: TransportContext = { config: t.gate.config, gate: t.gate, metrics: new Metrics({ defaultMetrics: false }), audit: new AuditLog(logger), logger };
  return { ctx, audit, logs };
}

/** Fresh keys, a harness and a grpc-js client on its Check port: how the gRPC suites start. */
export async function startGrpcSuite(patch?: (c: Record<string, any>) => void): Promise<{ keys: TestKeys; h: Harness; client: GrpcClient }> {
  const keys = await makeTestKeys();
  const h = await startHarness(keys, patch);
  return { keys, h, client: new GrpcClient(h.grpcPort) };
}

/** The end of a suite startGrpcSuite began (either may be missing when the start failed). */
export async function stopGrpcSuite(client: GrpcClient | undefined, h: Harness | undefined): Promise<void> {
  client?.close();
  await h?.close();
}

export async function startHarness(keys: TestKeys, patch: (c: Record<string, any>) => void = () => {}): Promise<Harness> {
  const t = await makeGate(keys, (c) => {
    extAuthzConfig(c);
    patch(c);
  });
  const { ctx, audit, logs } = await makeContext(t);
  const listeners = await startExtAuthz(ctx);
  const port = (name: string) => listeners.find((l) => l.name === name)?.port ?? -1;
  return {
    ...t,
    ctx,
    audit,
    logs,
    listeners,
    httpPort: port('ext_authz_http'),
    grpcPort: port('ext_authz_grpc'),
    async close() {
      await Promise.all(listeners.map((l) => l.close(100)));
      t.gate.stop();
    },
  };
}

/** Value of jitgate_decisions_total for one transport and reason. */
export async function decisions(metrics: Metrics, transport: Transport, reason: string): Promise<number> {
  const m = await metrics.decisions.get();
  return m.values.find((v) => v.labels.transport === transport && v.labels.reason === reason)?.value ?? 0;
}

// ---------- gRPC client from jitgate's own protos ----------

/** Client-side view: defaults on, so an absent message field reads as null and a present one as an object. */
const clientDef = loadSync(['envoy/service/auth/v3/external_auth.proto', 'grpc/health/v1/health.proto'], {
  keepCase: true,
  longs: String,
  enums: Number,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
});
const pkg = loadPackageDefinition(clientDef) as any;

export interface CheckResponseView {
  status: { code: number; message: string } | null;
  http_response?: 'ok_response' | 'denied_response';
  ok_response?: { headers: { header: { key: string; value: string }; append: { value: boolean } | null }[]; headers_to_remove: string[] } | null;
  denied_response?: { status: { code: number } | null; headers: { header: { key: string; value: string }; append: { value: boolean } | null }[]; body: string } | null;
}

export class GrpcClient {
  readonly #authz: Client & Record<string, Function>;
  readonly #health: Client & Record<string, Function>;
  readonly #raw: Client & Record<string, Function>;

  constructor(port: number) {
    const addr = `127.0.0.1:${port}`;
    this.#authz = new pkg.envoy.service.auth.v3.Authorization(addr, credentials.createInsecure());
    this.#health = new pkg.grpc.health.v1.Health(addr, credentials.createInsecure());
    // Sends arbitrary bytes as the Check request, to prove undecodable input still gets a CheckResponse.
    this.#raw = rawCheckClient(port, (b) => pkg.envoy.service.auth.v3.Authorization.service.Check.responseDeserialize(b) as unknown) as never;
  }

  /** `metadata`: gRPC call metadata, e.g. the traceparent Envoy sends with tracing on. */
  check(request: object, metadata?: Record<string, string>): Promise<CheckResponseView> {
    return unary(this.#authz, 'Check', request, metadata);
  }

  checkBytes(bytes: Buffer): Promise<CheckResponseView> {
    return unary(this.#raw, 'Check', bytes);
  }

  health(service = ''): Promise<{ status: number }> {
    return unary(this.#health, 'Check', { service });
  }

  close(): void {
    this.#authz.close();
    this.#health.close();
    this.#raw.close();
  }
}

function unary<T>(client: Record<string, Function>, method: string, request: unknown, metadata?: Record<string, string>): Promise<T> {
  const md = new Metadata();
  for (const [k, v] of Object.entries(metadata ?? {})) md.set(k, v);
  return new Promise((resolve, reject) => {
    client[method]!.call(client, request, md, { deadline: Date.now() + 10_000 }, (err: ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

/** A CheckRequest as Envoy sends it with the default `headers` map (keys lower case). */
export function checkRequest(method: string, path: string, headers: Record<string, string> = {}): object {
  return {
    attributes: {
      request: {
        http: { id: '1', method, path, host: 'orders.internal', scheme: 'http', protocol: 'HTTP/1.1', headers: { ':method': method, ':path': path, ':authority': 'orders.internal', ...headers } },
      },
    },
  };
}

/** A CheckRequest as Envoy sends it with encode_raw_headers: header_map entries with raw_value bytes (host is still set). */
export function rawCheckRequest(method: string, path: string, headers: [string, string][]): object {
  return {
    attributes: {
      request: {
        http: { method, path, host: 'orders.internal', header_map: { headers: [[':path', path], ...headers].map(([key, v]) => ({ key, raw_value: Buffer.from(v!, 'latin1') })) } },
      },
    },
  };
}

export function headerList(h: { header: { key: string; value: string } }[] | undefined): [string, string][] {
  return (h ?? []).map((o) => [o.header.key, o.header.value]);
}

// ---------- HTTP client ----------

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** `headers` as a flat [name, value, ...] list so a test can repeat a header. */
export function httpCall(port: number, method: string, path: string, headers: string[] = [], opts: { localAddress?: string; body?: string } = {}): Promise<HttpAnswer> {
  // A flat header list gets no automatic Host, and Node's server refuses HTTP/1.1 without one.
  if (!headers.some((v, i) => i % 2 === 0 && v.toLowerCase() === 'host')) headers = ['host', `127.0.0.1:${port}`, ...headers];
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, localAddress: opts.localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

// ---------- making the gate misbehave ----------

/** Runs `fn` while the first issuer's keys report `state` (e.g. 'loading' → keys_unavailable). */
export async function withKeysState<T>(h: TestGate, state: KeyState, fn: () => Promise<T>): Promise<T> {
  const k = h.gate.issuerKeys[0] as unknown as { state: (nowMs: number) => KeyState };
  const orig = k.state;
  k.state = () => state;
  try {
    return await fn();
  } finally {
    k.state = orig;
  }
}

/** Runs `fn` while gate.decide throws: transports must still refuse explicitly. */
/** The gate's decide fails while `fn` runs: a rejected promise (the verifying path) or a synchronous throw (the cached path). */
export async function withGateThrowing<T>(h: TestGate, fn: () => Promise<T>, how: 'rejects' | 'throws' = 'rejects'): Promise<T> {
  const gate = h.gate as unknown as { decide: (i: unknown) => unknown };
  const orig = gate.decide;
  gate.decide =
    how === 'rejects'
      ? async () => {
          throw new Error('boom');
        }
      : () => {
          throw new Error('boom');
        };
  try {
    return await fn();
  } finally {
    gate.decide = orig;
  }
}
