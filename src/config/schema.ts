/**
 * The config file's schema (SPEC §8). Every key has a default where one is sensible; unknown keys
 * are refused so a typo never silently falls back to a default. Durations are strings and come out
 * of validation as milliseconds.
 */
import { z } from 'zod';
import { ASYMMETRIC_ALGS, DEFAULT_DPOP_ALGORITHMS } from '../core/algorithms.ts';
import { DEFAULT_MAX_TOKEN_BYTES, MAX_TOKEN_BYTES_CEILING } from '../core/token-size.ts';
import { formatDuration, parseDuration, TIMER_MAX_MS } from './duration.ts';
import { MAX_LIST_BYTES_CEILING } from '../status-list/decode.ts';
import { FIELD_VALUE_CONTROL, HTTP_TOKEN } from '../net/http-syntax.ts';
import { serverTlsSchema, upstreamTlsSchema } from './tls-schema.ts';



/** The revocation follower's XREAD BLOCK on Redis (src/fleet/redis-source.ts): a healthy gate syncs about this often. */
export const REDIS_FOLLOW_BLOCK_MS = 1_000;

/** The longest `dpop.iat_window`: what a fleet-wide replay key must outlive, whatever each gate's own (redis-replay.ts). */
export const DPOP_IAT_WINDOW_MAX_MS = 600_000;

/**
 * A source synced on schedule is up to one sync interval plus one request's deadline old just before its next
 * sync lands, so a `max_stale` not longer than that makes a healthy gate answer 503 for part of every interval
 * (black-box probes: revocation.max_stale 500ms with Redis, half the requests 503; jwks_max_stale 1s with a 5s
 * refresh, 7 of 8). One rule for every such pair: an issue at `path` naming `bound` and `what` it is.
 */
function outlastsOneSync(ctx: z.RefinementCtx, path: (string | number)[], maxStale: number, bound: number, what: string, source: string): void {
  if (maxStale > bound) return;
  ctx.addIssue({ code: 'custom', path, message: `must be longer than ${what} (${formatDuration(bound)}), else ${source} goes stale between two syncs` });
}
const HTTP_METHOD = /^[A-Z][A-Z0-9_-]*$/;

/**
 * Headers ordinary requests and front proxies carry. An identity prefix that begins one of them (`x-` begins
 * x-forwarded-method) would have the proxy strip it and forward-auth refuse every request (a re-probe).
 */
const COMMON_HEADERS: readonly string[] = ['x-forwarded-method', 'x-forwarded-uri', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-for', 'x-original-uri', 'x-real-ip', 'x-request-id', 'host', 'accept', 'accept-encoding', 'user-agent', 'authorization', 'dpop', 'content-type', 'content-length', 'connection', 'cookie', 'traceparent', 'forwarded', 'via'];

/*
 * Durations that set a timer are held at or under TIMER_MAX_MS: past node's limit a `refresh: 30d`
 * became a fetch loop and a `timeout: 25d` an immediate timeout (a review). The few that are only
 * compared (`max_ttl`, `clock_tolerance`, the `max_stale`s) are not.
 */

function duration(example: string, use: 'timer' | 'compared' = 'timer') {
  return z
    .string({ error: (iss) => `expected a duration like "${example}", got ${describe(iss.input)}` })
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: `expected a duration like "${example}", got ${JSON.stringify(text)}` });
        return z.NEVER;
      }
      if (use === 'timer' && ms > TIMER_MAX_MS) {
        ctx.addIssue({ code: 'custom', message: `expected at most 24d (a timer waits at most ~24.8 days), got ${JSON.stringify(text)}` });
        return z.NEVER;
      }
      return ms;
    });
}

/**
 * A timeout that node:http or undici would take 0 to mean "never": a probe set
 * `limits.keep_alive_timeout: 0s` and idle connections stayed open for good.
 */
function timeout(example: string) {
  return duration(example).refine((ms) => ms > 0, { message: 'must be more than 0 (0 would turn this timeout off)' });
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return `${typeof v} ${JSON.stringify(v)}`;
}

const port = z.number({ error: (i) => `expected a port number, got ${describe(i.input)}` }).int().min(0).max(65535);
const host = z.string().min(1);
const listen = (defHost: string, defPort: number) =>
  z.strictObject({ host: host.default(defHost), port: port.default(defPort) }).default({ host: defHost, port: defPort });

const method = z.string().regex(HTTP_METHOD, 'expected an upper-case HTTP method such as GET');
/**
 * A method a public route or a grant action may name: never CONNECT, which every transport answers
 * 400 connect_method before routes or grants are read (SPEC §2) — naming it would be a dead entry
 * that reads like a permission.
 */
const grantableMethod = method.refine((m) => m !== 'CONNECT', 'CONNECT is never allowed: every transport answers it 400 connect_method (SPEC §2)');

const httpUrl = z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' });

/** Token Status List (SPEC §10, draft-ietf-oauth-status-list); docs/status-list.md. */
const statusList = z.strictObject({
  allowed_uris: z
    .array(
      httpUrl.refine((u) => {
        const p = URL.parse(u);
        return p !== null && p.username === '' && p.password === '' && p.hash === '';
      }, 'expected a URL prefix without user info or #fragment'),
    )
    .min(1, 'name at least one URI prefix under which the issuer publishes status lists'),
  required: z.boolean().default(false),
  // A list is fetched at most once a second whatever its ttl or exp say (list-entry.ts); a shorter
  // refresh would be a promise the gate does not keep, and 0 used to be a tight fetch loop.
  refresh: duration('1m')
    .default(60_000)
    .refine((ms) => ms >= 1_000, 'expected at least 1s (a list is fetched at most once a second)'),
  max_stale: duration('5m', 'compared').default(5 * 60_000),
  // Under 100 ms not even a fetch over loopback reliably completes: every first request would be 503.
  timeout: duration('2s')
    .default(2_000)
    .refine((ms) => ms >= 100, 'expected at least 100ms (one fetch of a list must be able to complete)'),
  /** The fetched list token (HTTP body), bytes. */
  max_bytes: z.number().int().positive().default(4 * 1024 * 1024),
  /** The inflated byte array, bytes: a list that inflates past it is refused (zip bomb). 16 MiB = 134M one-bit entries. */
  // At most 256 MiB: every bit position then fits the 32-bit arithmetic of the lookup (list-entry.ts).
  max_list_bytes: z.number().int().positive().max(MAX_LIST_BYTES_CEILING, 'at most 268435456 (256 MiB, 2^31 one-bit entries)').default(16 * 1024 * 1024),
  /**
   * Lists held at once for this issuer (list-cache.ts): tokens naming more distinct URIs once grew a
   * gate without bound. 1,000 covers a list per tenant for hundreds of tenants, or hourly lists for
   * weeks, while bounding the steady fetch rate (1,000 per refresh: 17/s at 1m) and /readyz's walk.
   */
  max_lists: z.number().int().positive().default(1000),
}).superRefine((s, ctx) => {
  // Refreshes are planned from the previous fetch's start: up to refresh + one fetch (≤ timeout) old.
  outlastsOneSync(ctx, ['max_stale'], s.max_stale, s.refresh + s.timeout, 'refresh + timeout', 'every list');
});

const issuer = z
  .strictObject({
    issuer: z.string().min(1, 'must be a non-empty issuer identifier'),
    jwks_file: z.string().min(1).optional(),
    jwks_uri: httpUrl.optional(),
    // Floors against a typo turning into a fetch loop against the issuer (0s once validated; a black-box probe):
    // a refresh every few ms, or an unknown-kid refetch for every forged kid a client sends.
    jwks_refresh: duration('5m')
      .default(5 * 60_000)
      .refine((ms) => ms >= 10, 'expected at least 10ms'),
    jwks_refresh_min: duration('30s')
      .default(30_000)
      .refine((ms) => ms >= 10, 'expected at least 10ms'),
    jwks_max_stale: duration('1h', 'compared').default(60 * 60_000),
    jwks_kid_cooldown: duration('30s')
      .default(30_000)
      .refine((ms) => ms >= 100, 'expected at least 100ms (each unknown kid a client sends may trigger a refetch once per cooldown)'),
    jwks_timeout: duration('5s').default(5_000),
    jwks_max_bytes: z.number().int().positive().default(512 * 1024),
    algorithms: z.array(z.enum(ASYMMETRIC_ALGS, { error: (i) => `alg ${JSON.stringify(i.input)} is not allowed; asymmetric only: ${ASYMMETRIC_ALGS.join(', ')}` })).min(1).default(['ES256']),
    max_ttl: duration('15m', 'compared').default(15 * 60_000),
    clock_tolerance: duration('5s', 'compared').default(5_000),
    typ: z.string().min(1).optional(),
    /** Refuse this issuer's tokens unless DPoP-bound (cnf.jkt); default `dpop.require`. */
    require_dpop: z.boolean().optional(),
    /** Token Status List (SPEC §10); absent: a token's status claim is not acted on. */
    status_list: statusList.optional(),
    /** Refuse this issuer's tokens unless certificate-bound (cnf.x5t#S256, RFC 8705; SPEC §11). */
    require_cert_binding: z.boolean().default(false),
  })
  .superRefine((v, ctx) => {
    if ((v.jwks_file === undefined) === (v.jwks_uri === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'set exactly one of jwks_file and jwks_uri' });
    }
    if (v.jwks_uri !== undefined) outlastsOneSync(ctx, ['jwks_max_stale'], v.jwks_max_stale, v.jwks_refresh + v.jwks_timeout, 'jwks_refresh + jwks_timeout', 'the key set');
  });

const alg = z.enum(ASYMMETRIC_ALGS, { error: (i) => `alg ${JSON.stringify(i.input)} is not allowed; asymmetric only: ${ASYMMETRIC_ALGS.join(', ')}` });

/** Proof-of-possession (RFC 9449): how DPoP proofs for `cnf.jkt`-bound tokens are judged. */
const dpop = z.strictObject({
  algorithms: z.array(alg).min(1).default([...DEFAULT_DPOP_ALGORITHMS]),
  iat_window: duration('60s')
    .default(60_000)
    .refine((ms) => ms >= 1_000 && ms <= DPOP_IAT_WINDOW_MAX_MS, 'expected between 1s and 10m'),
  replay_cache_entries: z.number().int().min(1).max(10_000_000).default(100_000),
  require: z.boolean().default(false),
  use_nonce: z.boolean().default(false),
  nonce_rotation: duration('1m')
    .default(60_000)
    .refine((ms) => ms >= 1_000, 'expected at least 1s'),
  external_origin: httpUrl.optional(),
  trusted_proxies: z.array(z.string().min(1)).default([]),
  /** Where proof jtis are recorded (SPEC §9): this process (or the cluster primary), or Redis, fleet-wide. */
  replay: z.enum(['local', 'redis']).default('local'),
});

/** Fleet state (SPEC §9, docs/fleet.md): the Redis (or Valkey) that gates sharing a prefix share. */
const redis = z
  .strictObject({
    url: z
      .url({ protocol: /^rediss?$/, error: 'expected a redis:// or rediss:// URL' })
      // The client reads a database number from the path only: `/abc` threw a TypeError at start, `/1.5`
      // was retried for ever as "unreachable", and `?db=3` silently used database 0 (a black-box probe).
      .refine((u) => /^(\/\d*)?$/.test(new URL(u).pathname), 'the path is the database number, e.g. redis://127.0.0.1:6379/0')
      .refine((u) => new URL(u).search === '' && new URL(u).hash === '', 'no query or fragment: the database number goes in the path (redis://127.0.0.1:6379/3), the password in the URL or redis.password_file'),
    password_file: z.string().min(1).optional(),
    key_prefix: z.string().min(1).max(64).default('jitgate:'),
    connect_timeout: timeout('2s').default(2_000),
    command_timeout: timeout('1s').default(1_000),
    /** rediss:// only: the CA that signed Redis's certificate, when it is not in the system store. */
    ca_file: z.string().min(1).optional(),
  })
  .superRefine((r, ctx) => {
    // As upstream.tls with an http:// URL: a CA for a connection that never speaks TLS is a mistake to name.
    if (r.ca_file !== undefined && URL.parse(r.url)?.protocol === 'redis:') ctx.addIssue({ code: 'custom', path: ['ca_file'], message: 'is for rediss:// URLs; redis.url is redis:// (plain TCP)' });
  });

const publicRoute = z.strictObject({
  methods: z.array(grantableMethod).min(1).default(['GET', 'HEAD']),
  path: z.string().startsWith('/', 'expected an absolute path pattern such as /healthz'),
});

/** The traffic and admin listeners may speak TLS (SPEC §11): the same host/port plus `tls`. */
const listenTls = (defHost: string, defPort: number) =>
  z.strictObject({ host: host.default(defHost), port: port.default(defPort), tls: serverTlsSchema.optional() }).default({ host: defHost, port: defPort });

export const configSchema = z.strictObject({
  listen: listenTls('0.0.0.0', 8080),
  upstream: z.strictObject({
    url: httpUrl,
    tls: upstreamTlsSchema.optional(),
    connect_timeout: timeout('2s').default(2_000),
    headers_timeout: timeout('30s').default(30_000),
    body_timeout: timeout('30s').default(30_000),
    connections: z.number().int().positive().default(128),
    keep_alive_timeout: timeout('4s').default(4_000),
  }),
  service: z.strictObject({
    audience: z.string().min(1, 'must be a non-empty audience'),
    location: z.string().min(1).optional(),
    /** The client certificate's spiffe:// URI SAN must equal the token's sub (SPEC §11). */
    spiffe_subject: z.boolean().default(false),
  }),
  issuers: z.array(issuer).min(1, 'configure at least one issuer'),
  grant: z
    .strictObject({
      type: z.string().min(1).default('jit_grant'),
      actions: z.record(z.string().min(1), z.array(grantableMethod).min(1)).default({}),
    })
    .default({ type: 'jit_grant', actions: {} }),
  public: z.array(publicRoute).default([]),
  dpop: dpop.prefault({}),
  revocation: z
    .strictObject({
      file: z.string().min(1).optional(),
      url: httpUrl.optional(),
      poll_interval: duration('2s')
        .default(2_000)
        .refine((ms) => ms >= 10, 'expected at least 10ms'),
      max_stale: duration('30s', 'compared').default(30_000),
      timeout: duration('2s').default(2_000),
      max_bytes: z.number().int().positive().default(256 * 1024 * 1024),
      journal: z.string().min(1).optional(),
      /** SPEC §9: entries shared through Redis (needs the `redis` block). */
      redis: z.boolean().default(false),
    })
    .default({ poll_interval: 2_000, max_stale: 30_000, timeout: 2_000, max_bytes: 256 * 1024 * 1024, redis: false }),
  headers: z
    .strictObject({
      prefix: z
        .string()
        .regex(/^[a-z0-9-]+$/, 'expected a lower-case header name prefix such as x-jit-')
        .refine((p) => !COMMON_HEADERS.some((h) => h.startsWith(p)), {
          error: (iss) => `${String(iss.input)} would also match ${COMMON_HEADERS.find((h) => h.startsWith(String(iss.input)))}, a header clients and proxies send (inbound identity headers are removed, and refused on forward-auth); choose one of its own such as x-jit-`,
        })
        .default('x-jit-'),
      forward_authorization: z.boolean().default(false),
      method_override: z.enum(['reject', 'strip']).default('reject'),
      max_token_bytes: z.number().int().min(256).max(MAX_TOKEN_BYTES_CEILING).default(DEFAULT_MAX_TOKEN_BYTES),
    })
    .default({ prefix: 'x-jit-', forward_authorization: false, method_override: 'reject', max_token_bytes: DEFAULT_MAX_TOKEN_BYTES }),
  limits: z
    .strictObject({
      max_target_length: z.number().int().min(64).default(8192),
      max_header_bytes: z.number().int().min(1024).default(16384),
      headers_timeout: timeout('10s').default(10_000),
      request_timeout: timeout('5m').default(300_000),
      keep_alive_timeout: timeout('5s').default(5_000),
      /** true only when the backend is known not to trim, best-fit or re-parse decoded segments (docs/hardening-edges.md). */
      allow_dot_like_segments: z.boolean().default(false),
      /**
       * Client connections each traffic listener (proxy, ext_authz HTTP) holds at once; one more is closed at accept
       * (HAProxy maxconn). 0: no cap beyond the process's file descriptors.
       */
      max_connections: z.number().int().min(0).default(0),
      /** Request body idle timeout: no body byte for this long → 408 (nginx client_body_timeout). */
      body_timeout: timeout('60s').default(60_000),
      /** Requests one client connection may have unanswered (pipelined); beyond → 429 and close. */
      max_inflight_per_connection: z.number().int().min(1).default(32),
      /** Proxied requests one token (jti) may have in flight per process; beyond → 429. 0 = no cap. */
      max_inflight_per_token: z.number().int().min(0).default(64),
    })
    .default({
      max_target_length: 8192,
      max_header_bytes: 16384,
      headers_timeout: 10_000,
      request_timeout: 300_000,
      keep_alive_timeout: 5_000,
      allow_dot_like_segments: false,
      max_connections: 0,
      body_timeout: 60_000,
      max_inflight_per_connection: 32,
      max_inflight_per_token: 64,
    }),
  cache: z
    .strictObject({ max_entries: z.number().int().min(0).default(10_000) })
    .default({ max_entries: 10_000 }),
  admin: z
    .strictObject({
      listen: listen('127.0.0.1', 9901),
      token_file: z.string().min(1).optional(),
      /** TLS (and client certificates) on the admin listener, like listen.tls. */
      tls: serverTlsSchema.optional(),
    })
    .default({ listen: { host: '127.0.0.1', port: 9901 } }),
  ext_authz: z
    .strictObject({
      http: z.strictObject({ listen: listen('127.0.0.1', 9191), path_prefix: z.string().default('') }).optional(),
      grpc: z
        .strictObject({
          listen: listen('127.0.0.1', 9192),
          /** gRPC server reflection, so grpcurl and similar tools work without the .proto files. */
          reflection: z.boolean().default(true),
        })
        .optional(),
      forward_auth: z
        .strictObject({
          path: z.string().startsWith('/').default('/forward-auth'),
          trusted_proxies: z.array(z.string().min(1)).default(['127.0.0.1/32', '::1/128']),
        })
        .optional(),
    })
    .default({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      audit: z.boolean().default(true),
      /** `stdout`, `stderr` or a file path. */
      destination: z.string().min(1).default('stdout'),
      /** SPEC §12: every audit line carries `seq` and `prev` (SHA-256 of the previous audit line). */
      audit_chain: z.boolean().default(false),
      /** SPEC §12: an Ed25519 private JWK; signed checkpoint lines every 10 s and at shutdown. */
      audit_checkpoint_key: z.string().min(1).optional(),
    })
    .default({ level: 'info', audit: true, destination: 'stdout', audit_chain: false }),
  shutdown: z
    .strictObject({ grace: duration('10s').default(10_000) })
    .default({ grace: 10_000 }),
  workers: z
    .union([z.number().int().min(1).max(256), z.literal('auto')], { error: (i) => `expected a number of processes (1–256) or "auto", got ${describe(i.input)}` })
    .default(1),
  /** SPEC §12: revoke a token (its task, or its subject) that keeps probing outside its grant. Off when absent. */
  anomaly: z
    .strictObject({
      deny_threshold: z.number().int().min(1).max(100).default(5),
      window: duration('1m')
        .default(60_000)
        .refine((ms) => ms >= 1_000 && ms <= 86_400_000, 'expected between 1s and 24h'),
      revoke: z.enum(['txn', 'jti', 'sub']).default('txn'),
      /** Tokens whose refusals are counted at once (an LRU): bounds memory against token rotation. */
      max_tracked: z.number().int().min(100).max(10_000_000).default(100_000),
    })
    .optional(),
  /** OpenTelemetry tracing over OTLP/HTTP (src/observability/tracing.ts); off unless present. */
  tracing: z
    .strictObject({
      /** The full OTLP/HTTP traces URL, e.g. http://otel-collector:4318/v1/traces. */
      otlp_endpoint: httpUrl,
      /** Share of new traces recorded (0..1); a sampled incoming traceparent is always followed. */
      sample_ratio: z.number().min(0).max(1).default(1),
      service_name: z.string().min(1).default('jitgate'),
      /** Extra headers on every export request (e.g. a collector's API key). */
      // Checked here: a name or value the HTTP client refuses failed every export, silently but for a warning a minute.
      headers: z
        .record(z.string(), z.string().refine((v) => !FIELD_VALUE_CONTROL.test(v), 'a header value may not hold a control character (CR and LF among them)'))
        .superRefine((headers, ctx) => {
          for (const name of Object.keys(headers)) {
            if (!HTTP_TOKEN.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: "a header name is a token: letters, digits and !#$%&'*+.^_`|~-" });
          }
        })
        .default({}),
      /** Spans waiting for export; beyond this they are dropped, never held. */
      max_queue_size: z.number().int().min(1).max(1_000_000).default(2048),
      export_interval: duration('5s')
        .refine((ms) => ms >= 10, 'expected at least 10ms')
        .default(5_000),
      export_timeout: timeout('10s').default(10_000),
    })
    .optional(),
  redis: redis.optional(),
})
  .superRefine((c, ctx) => {
    // node:http refuses a request timeout shorter than its headers timeout: a RangeError and a stack trace at start (a re-probe).
    if (c.limits.request_timeout < c.limits.headers_timeout) {
      ctx.addIssue({ code: 'custom', path: ['limits', 'request_timeout'], message: `must be at least limits.headers_timeout (${formatDuration(c.limits.headers_timeout)}): a whole request cannot take less time than its head` });
    }
    const r = c.revocation;
    if (r.url !== undefined) outlastsOneSync(ctx, ['revocation', 'max_stale'], r.max_stale, r.poll_interval + r.timeout, 'revocation.poll_interval + revocation.timeout', 'the feed');
    if (r.redis && c.redis !== undefined) {
      outlastsOneSync(ctx, ['revocation', 'max_stale'], r.max_stale, REDIS_FOLLOW_BLOCK_MS + c.redis.command_timeout, `the Redis follower's ${formatDuration(REDIS_FOLLOW_BLOCK_MS)} read + redis.command_timeout`, 'a healthy gate');
    }
    // SPEC §9: both features need the connection they share.
    if (c.redis !== undefined) return;
    if (c.revocation.redis) ctx.addIssue({ code: 'custom', path: ['revocation', 'redis'], message: 'needs a redis block (redis.url)' });
    if (c.dpop.replay === 'redis') ctx.addIssue({ code: 'custom', path: ['dpop', 'replay'], message: 'redis needs a redis block (redis.url)' });
  });

/** The validated config: durations in milliseconds, defaults filled in, paths still as written. */
export type Config = z.infer<typeof configSchema>;
export type IssuerConfig = Config['issuers'][number];
