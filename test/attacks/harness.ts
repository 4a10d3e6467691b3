/**
 * The attack harness: one real jitgate (startJitgate: proxy, admin, ext_authz HTTP + gRPC +
 * forward-auth, all on port 0) in front of a recording upstream, plus an "attacker" server on
 * loopback that must never be contacted (jku/x5u). `runCase` sends one corpus row through one
 * transport and reports what came back, so every family asserts the same way:
 * exact status, exact reason from the JSON body, and that the upstream saw nothing.
 *
 * The proxy and the HTTP ext_authz listener are driven over raw sockets, because fetch and
 * node's client normalize exactly the bytes an attacker cares about (targets, header case,
 * duplicates, framing).
 */
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { validateConfig } from '../../src/config/load.ts';
import { REASONS, type Reason } from '../../src/core/reasons.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { startJitgate, type Running } from '../../src/runtime.ts';
import { makeTestKeys, type TestKeys } from '../fixtures/gate.ts';
import { jwksOf, makeKey, tempDir, writeJson, type TestKey } from '../fixtures/keys.ts';
import { startRecordingUpstream, type RecordingUpstream } from '../fixtures/servers.ts';
import { AUDIENCE, ISSUER_A, ISSUER_B, LOCATION } from '../fixtures/tokens.ts';
import { GrpcClient, checkRequest } from '../transports/ext-authz/helpers.ts';

export const ISSUER_C = 'https://rsa-broker.internal';
export type Header = readonly [string, string];
export type Transport = 'proxy' | 'ext_authz_http' | 'ext_authz_grpc' | 'forward_auth';
export const TRANSPORTS: readonly Transport[] = ['proxy', 'ext_authz_http', 'ext_authz_grpc', 'forward_auth'];

/**
 * What a row expects: a reason (its status comes from reasons.ts, adjusted per transport),
 * `http NNN` for a refusal node:http makes before the gate runs (no JSON body), or `closed`.
 */
export type Outcome = Reason | `http ${number}` | 'closed';

export interface AttackKeys extends TestKeys {
  /** RS256 and PS256 keys of issuer C. */
  readonly rsa: TestKey;
  readonly pss: TestKey;
  /** A key the attacker controls (published only by the attacker server). */
  readonly evil: TestKey;
}

export interface AttackGate {
  readonly running: Running;
  readonly keys: AttackKeys;
  readonly upstream: RecordingUpstream;
  readonly attackerUrl: string;
  /** Requests the attacker server received (must stay empty). */
  readonly attackerHits: string[];
  readonly audit: Record<string, any>[];
  readonly ports: Readonly<Record<'proxy' | 'http' | 'grpc', number>>;
  readonly grpc: GrpcClient;
  readonly dir: string;
  close(): Promise<void>;
}

export interface Sent {
  readonly method: string;
  readonly target: string;
  readonly headers: readonly Header[];
  /** Sent with a Content-Length on the HTTP transports; not part of a gRPC CheckRequest. */
  readonly body?: string | undefined;
}

export interface Seen {
  /** HTTP status; for gRPC the denied_response status, 200 on an allow. 0 when the socket closed without an answer. */
  readonly status: number;
  /** `reason` from the JSON body, the audit line's reason on an allow, null when there was no JSON body. */
  readonly reason: string | null;
  readonly grpcCode?: number;
  readonly cacheControl?: string | undefined;
  /** Response headers (lower-case names); for gRPC the allow's `ok_response.headers` / denial headers. */
  readonly headers: ReadonlyMap<string, string>;
  /** gRPC allow: `ok_response.headers_to_remove`. */
  readonly headersToRemove?: readonly string[];
}

/** Limits kept short so slow-client tests finish fast; everything else as an operator writes it. */
export async function startAttackGate(patch: (c: Record<string, any>) => void = () => {}): Promise<AttackGate> {
  const base = await makeTestKeys();
  const [rsa, pss, evil] = await Promise.all([makeKey('RS256', 'c-rs256'), makeKey('PS256', 'c-ps256'), makeKey('ES256', 'evil')]);
  const keys: AttackKeys = { ...base, rsa, pss, evil };
  const attackerHits: string[] = [];
  const attacker: Server = createServer((req, res) => {
    attackerHits.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwksOf(evil)));
  });
  await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', r));
  const attackerUrl = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}`;
  const upstream = await startRecordingUpstream();
  const dir = await tempDir('jitgate-attacks-');
  const revoked = join(dir, 'revoked.jsonl');
  await writeFile(revoked, '{"jti":"revoked-jti"}\n');
  const raw: Record<string, any> = {
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: upstream.url, headers_timeout: '2s', body_timeout: '2s' },
    service: { audience: AUDIENCE, location: LOCATION },
    issuers: [
      { issuer: ISSUER_A, jwks_file: await writeJson(dir, 'a.json', jwksOf(keys.a, keys.aEd)), algorithms: ['ES256', 'EdDSA'], max_ttl: '15m', typ: 'jit+jwt' },
      { issuer: ISSUER_B, jwks_file: await writeJson(dir, 'b.json', jwksOf(keys.b)), algorithms: ['ES256'] },
      { issuer: ISSUER_C, jwks_file: await writeJson(dir, 'c.json', jwksOf(rsa, pss)), algorithms: ['RS256', 'PS256'], typ: 'jit+jwt' },
    ],
    grant: { type: 'jit_grant', actions: { read: ['GET', 'HEAD'] } },
    public: [{ methods: ['GET'], path: '/healthz' }],
    revocation: { file: revoked, poll_interval: '100ms' },
    limits: { headers_timeout: '1s', request_timeout: '2s', keep_alive_timeout: '1s' },
    admin: { listen: { host: '127.0.0.1', port: 0 } },
    ext_authz: {
      http: { listen: { host: '127.0.0.1', port: 0 }, path_prefix: '/authz' },
      grpc: { listen: { host: '127.0.0.1', port: 0 } },
      forward_auth: { path: '/forward-auth', trusted_proxies: ['127.0.0.1/32'] },
    },
    log: { level: 'info', destination: 'stdout' },
  };
  patch(raw);
  const file = join(dir, 'jitgate.yaml');
  await writeFile(file, JSON.stringify(raw));
  const audit: Record<string, any>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        const rec = JSON.parse(line) as Record<string, any>;
        if (rec.type === 'audit') audit.push(rec);
      }
      cb();
    },
  });
  const running = await startJitgate(validateConfig(raw, file), file, { logger: createLogger({ level: 'info', destination: 'stdout' }, sink), defaultMetrics: false });
  const port = (name: string) => running.listeners.extAuthz.find((l) => l.name === name)?.port ?? -1;
  const ports = { proxy: running.listeners.proxy.port, http: port('ext_authz_http'), grpc: port('ext_authz_grpc') };
  const grpc = new GrpcClient(ports.grpc);
  return {
    running, keys, upstream, attackerUrl, attackerHits, audit, ports, grpc, dir,
    async close() {
      grpc.close();
      await running.close(200);
      await upstream.close();
      attacker.closeAllConnections();
      await new Promise<void>((r) => attacker.close(() => r()));
    },
  };
}

export interface RawAnswer {
  readonly status: number;
  readonly headers: ReadonlyMap<string, string>;
  readonly body: string;
  /** The server closed the connection (or it was already closed when the timeout hit). */
  readonly closed: boolean;
  readonly ms: number;
}

/** Writes `bytes` on a fresh connection and reads one answer until the server closes (or `timeoutMs`). */
export function rawExchange(port: number, bytes: string | Buffer, timeoutMs = 5000): Promise<RawAnswer> {
  const started = performance.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parseAnswer(Buffer.concat(chunks)), closed, ms: performance.now() - started });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
  });
}

export function parseAnswer(all: Buffer): { status: number; headers: Map<string, string>; body: string } {
  const split = all.indexOf('\r\n\r\n');
  const headers = new Map<string, string>();
  if (split === -1) return { status: 0, headers, body: '' };
  const lines = all.subarray(0, split).toString('latin1').split('\r\n');
  for (const line of lines.slice(1)) {
    const c = line.indexOf(':');
    headers.set(line.slice(0, c).toLowerCase(), line.slice(c + 1).trim());
  }
  return { status: Number(lines[0]!.split(' ')[1]), headers, body: all.subarray(split + 4).toString('latin1') };
}

/** A request as raw bytes (latin1, so a test can put any byte in the target or a header). */
export function head(method: string, target: string, headers: readonly Header[], body?: string, host = 'orders.internal'): Buffer {
  const framing = body === undefined ? [] : [`Content-Length: ${Buffer.byteLength(body, 'latin1')}`];
  const lines = [`${method} ${target} HTTP/1.1`, `Host: ${host}`, ...headers.map(([k, v]) => `${k}: ${v}`), ...framing, 'Connection: close', '', body ?? ''];
  return Buffer.from(lines.join('\r\n'), 'latin1');
}

function reasonOf(body: string): string | null {
  try {
    const r = (JSON.parse(body) as { reason?: unknown }).reason;
    return typeof r === 'string' ? r : null;
  } catch {
    return null;
  }
}

/** Sends one row through one transport. On an allow, `reason` is the audit line's (granted/public). */
export async function runCase(g: AttackGate, t: Transport, s: Sent): Promise<Seen> {
  const auditBefore = g.audit.length;
  const lastAudit = async (): Promise<string | null> => {
    for (let i = 0; i < 200 && g.audit.length === auditBefore; i++) await new Promise((r) => setTimeout(r, 5));
    return (g.audit.at(-1)?.reason as string | undefined) ?? null;
  };
  if (t === 'ext_authz_grpc') {
    const map: Record<string, string> = {};
    for (const [k, v] of s.headers) {
      const key = k.toLowerCase();
      map[key] = map[key] === undefined ? v : `${map[key]},${v}`;
    }
    const r = await g.grpc.check(checkRequest(s.method, s.target, map));
    const code = r.status?.code ?? -1;
    if (code === 0) {
      const ok = r.ok_response;
      const headers = new Map((ok?.headers ?? []).map((h) => [h.header.key, h.header.value] as const));
      return { status: 200, reason: await lastAudit(), grpcCode: 0, headers, headersToRemove: ok?.headers_to_remove ?? [] };
    }
    const d = r.denied_response!;
    const headers = new Map(d.headers.map((h) => [h.header.key.toLowerCase(), h.header.value] as const));
    return { status: d.status?.code ?? 0, reason: reasonOf(d.body), grpcCode: code, cacheControl: headers.get('cache-control'), headers };
  }
  let bytes: Buffer;
  let port = g.ports.http;
  if (t === 'proxy') {
    port = g.ports.proxy;
    bytes = head(s.method, s.target, s.headers, s.body);
  } else if (t === 'ext_authz_http') bytes = head(s.method, `/authz${s.target}`, s.headers, s.body);
  else bytes = head('GET', '/forward-auth', [['X-Forwarded-Method', s.method], ['X-Forwarded-Uri', s.target], ...s.headers]);
  const a = await rawExchange(port, bytes);
  const ok = a.status >= 200 && a.status < 300;
  // The proxy's allow is the upstream's answer; ext_authz allows are exactly 200 with no body.
  const reason = ok ? await lastAudit() : reasonOf(a.body);
  return { status: a.status, reason, cacheControl: a.headers.get('cache-control'), headers: a.headers };
}

const GRPC_CODE: Readonly<Record<number, number>> = { 400: 3, 401: 16, 403: 7, 503: 14 };

/** What `t` must answer for `o`: the HTTP status, the JSON reason (null: none), and the gRPC code. */
export function expected(o: Outcome, t: Transport): { status: number; reason: string | null; grpcCode?: number } {
  if (o === 'closed') return { status: 0, reason: null };
  if (o.startsWith('http ')) return { status: Number(o.slice(5)), reason: null };
  const info = REASONS[o as Reason];
  if (info.status === 0) return { status: 200, reason: o, grpcCode: 0 };
  // SPEC §7: Envoy's HTTP service never answers 5xx; the 503 cases answer 403 with the same reason.
  const status = t === 'ext_authz_http' && info.status >= 500 ? 403 : info.status;
  return { status, reason: o, grpcCode: GRPC_CODE[info.status] };
}
