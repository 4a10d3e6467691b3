/**
 * Envoy's gRPC authorization service, `envoy.service.auth.v3.Authorization/Check`, plus
 * `grpc.health.v1.Health/Check` and server reflection on the same port (SPEC §7), served by
 * jitgate's own gRPC-on-node:http2 server (grpc-h2/server.ts): grpc-js bounded this path at
 * ≈ 0.15× the HTTP service (issue 20, bench/README.md).
 *
 * Every Check completes as a successful RPC carrying a CheckResponse — allow, deny, "could not
 * decide" (status 14) and malformed input alike — because Envoy counts any RPC error as a service
 * failure, which `failure_mode_allow: true` would turn into an allow. That includes a request
 * larger than 4 MiB, one that does not decode, is compressed, is cut
 * short or carries two messages: each gets the 400 `missing_attributes` denial (status 3).
 * Answers are bytes: denials are encoded at start and an allow once per cached token
 * (check-response.ts), and framed once per such buffer, so a hot check encodes nothing.
 */
import { PendingDecisions } from '../pending-decisions.ts';
import type { ServiceDefinition } from '@grpc/grpc-js';
import type { IncomingHttpHeaders } from 'node:http2';
import { ReflectionService } from '@grpc/reflection';
import { deny, unavailable, type Decision } from '../../core/decision.ts';
import { StartupError } from '../../errors.ts';
import type { Listener, TransportContext } from '../context.ts';
import { capConnections } from '../http-listener.ts';
import { checkRequestDecoder } from './check-codec.ts';
import { checkInputFrom, type CheckRequestObject } from './check-request.ts';
import { CheckResponses } from './check-response.ts';
import { frame, type ReadProblem } from './grpc-h2/frames.ts';
import { GRPC_STATUS, GrpcH2Server, type BidiCall, type Route, type UnaryReply } from './grpc-h2/server.ts';
import { decideSafely, observe } from './judge.ts';
import { AUTHORIZATION_SERVICE, encodeResponse, HEALTH_SERVICE, isUndecodable, loadProtos } from './protos.ts';
import type { UpstreamHeaders } from './upstream-headers.ts';

const NO_STRAY: readonly string[] = Object.freeze([]);

/** The largest CheckRequest read (grpc-js's and Envoy's default message limit); not configurable. */
export const DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024;

const SERVING = 1;
const NOT_SERVING = 2;

const PROBLEMS: Record<ReadProblem, string> = {
  too_large: 'a CheckRequest larger than 4 MiB (DEFAULT_MAX_REQUEST_BYTES)',
  compressed: 'a compressed CheckRequest (jitgate accepts no grpc-encoding)',
  truncated: 'a Check call that ended before its CheckRequest was complete',
  extra_message: 'a Check call with more than one CheckRequest',
};

export interface GrpcServiceOptions {
  readonly host: string;
  readonly port: number;
  readonly upstream: UpstreamHeaders;
  /** Serve gRPC server reflection (v1 and v1alpha) for the two services. */
  readonly reflection?: boolean;
  /** Larger CheckRequests are answered with a denial, from their length prefix alone. */
  readonly maxRequestBytes?: number;
}

export async function startGrpcService(ctx: TransportContext, opts: GrpcServiceOptions): Promise<Listener> {
  const protos = loadProtos();
  const decode = checkRequestDecoder();
  // Kept framed (length prefix included): the precomputed denials and the cached allows are sent as they are.
  const responses = new CheckResponses(opts.upstream, ctx.gate.policy, (m) => frame(encodeResponse(protos.authorization, 'Check', m)));
  const internalError = responses.denied('internal_error').bytes;
  const isStray = opts.upstream.isStray;
  // A connection that owes nothing and sends nothing for headers_timeout is closed, as the HTTP listeners close a silent one.
  const server = new GrpcH2Server({ maxMessageBytes: opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES, stallTimeoutMs: ctx.config.limits.headers_timeout });
  capConnections(server.netServer, ctx.config.limits.max_connections, ctx.metrics);

  /** Encodes and sends the answer, then records it; never throws. */
  const finish = (reply: UnaryReply, decision: Decision, method: string, stray: readonly string[], startNs: bigint, client?: string, headers?: IncomingHttpHeaders): void => {
    let bytes: Buffer;
    let httpStatus: number;
    try {
      const a = responses.answer(decision, stray);
      bytes = a.bytes;
      httpStatus = a.httpStatus;
    } catch (err) {
      ctx.logger.error({ err }, 'encoding a CheckResponse failed; answering internal_error');
      bytes = internalError;
      httpStatus = 503;
    }
    // Audited and counted only when this answer is what the client got: a call already refused (a
    // second message) has its one line already (a review found two contradictory lines for one call).
    if (!reply.okFramed(bytes)) {
      // The deadline answered first and Envoy applied its own failure mode; the decision was still
      // taken, so it gets its line, marked as never delivered (not counted as an answer).
      if (reply.expired) {
        const latencyMs = Number(process.hrtime.bigint() - startNs) / 1e6;
        ctx.audit.record({ transport: 'ext_authz_grpc', method, decision, status: 504, latencyMs, client, outcome: 'deadline_exceeded' });
      }
      return;
    }
    // Envoy sends its own trace context in the call's headers (not in the checked request's headers).
    observe(ctx, 'ext_authz_grpc', method, decision, httpStatus, startNs, client, ctx.tracer === undefined || headers === undefined ? undefined : h2Carrier(headers));
  };

  const pending = new PendingDecisions(ctx);
  const check = (message: Buffer | ReadProblem, reply: UnaryReply, headers: IncomingHttpHeaders): void => {
    const startNs = process.hrtime.bigint();
    if (typeof message === 'string') {
      ctx.logger.warn({ problem: message }, `refused ${PROBLEMS[message]} (400 missing_attributes)`);
      finish(reply, deny('missing_attributes'), '', NO_STRAY, startNs);
      return;
    }
    let checked: ReturnType<typeof checkInputFrom>;
    let client: string | undefined;
    try {
      let req: CheckRequestObject | null;
      try {
        req = decode(message);
      } catch {
        req = null; // not a CheckRequest: the same 400 as one without HTTP attributes
      }
      checked = checkInputFrom(req, isStray);
      client = sourceAddress(req);
    } catch (err) {
      ctx.logger.error({ err }, 'reading a CheckRequest failed; answering internal_error');
      finish(reply, unavailable('internal_error'), '', NO_STRAY, startNs);
      return;
    }
    if (checked === null) {
      finish(reply, deny('missing_attributes'), '', NO_STRAY, startNs);
      return;
    }
    const { input, stray } = checked;
    // decideSafely never throws or rejects; a cached token is decided in this tick, as in the proxy.
    const decision = decideSafely(ctx, 'ext_authz_grpc', input);
    if (decision instanceof Promise) void pending.after('ext_authz_grpc', decision, input.method, client, (d) => finish(reply, d, input.method, stray, startNs, client, headers));
    else finish(reply, decision, input.method, stray, startNs, client, headers);
  };
  server.route(`/${AUTHORIZATION_SERVICE}/Check`, { kind: 'unary', handle: check });

  const health = (protos.health as unknown as Record<string, { requestDeserialize(b: Buffer): { service?: string }; responseSerialize(v: object): Buffer }>).Check!;
  server.route(`/${HEALTH_SERVICE}/Check`, {
    kind: 'unary',
    handle(message, reply) {
      let service = '';
      try {
        if (typeof message === 'string') throw new Error(message);
        const request = health.requestDeserialize(message);
        // The hardened decoder answers an undecodable message with an empty one (protos.ts).
        if (isUndecodable(request)) throw new Error('undecodable');
        service = request.service ?? '';
      } catch {
        reply.error(GRPC_STATUS.INTERNAL, 'undecodable HealthCheckRequest');
        return;
      }
      if (service !== '' && service !== AUTHORIZATION_SERVICE) {
        reply.error(GRPC_STATUS.NOT_FOUND, 'unknown service');
        return;
      }
      reply.ok(health.responseSerialize({ status: ctx.gate.readiness().ready ? SERVING : NOT_SERVING }));
    },
  });

  // grpcurl, grpcui and friends list and call the services without being handed the .proto files.
  if (opts.reflection !== false) for (const [path, route] of reflectionRoutes(protos.definition)) server.route(path, route);

  const port = await server.listen(opts.host, opts.port).catch((err: Error) => {
    const address = `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
    throw new StartupError(`ext_authz.grpc.listen: cannot listen on ${address}: ${err.message}`, { cause: err });
  });

  // Checks still waiting on a decision when the grace ends are audited as cut (pending-decisions.ts).
  return {
    name: 'ext_authz_grpc',
    host: opts.host,
    port,
    close: (graceMs: number) => pending.closing((atCut) => server.close(graceMs, atCut)),
  };
}

/**
 * @grpc/reflection's v1 and v1alpha services, as routes: its addToServer is handed a stand-in
 * that records each method's path, codecs and handler (a grpc-js bidi handler, which only uses
 * `data`, `end`, `write` and `end()`).
 */
function reflectionRoutes(definition: ConstructorParameters<typeof ReflectionService>[0]): Map<string, Route> {
  const routes = new Map<string, Route>();
  type Method = { path: string; requestDeserialize(b: Buffer): unknown; responseSerialize(v: unknown): Buffer; originalName?: string };
  const recorder = {
    addService(service: ServiceDefinition, impl: Record<string, (call: BidiCall) => void>): void {
      for (const [name, m] of Object.entries(service as unknown as Record<string, Method>)) {
        const handler = impl[name] ?? (m.originalName === undefined ? undefined : impl[m.originalName]);
        if (handler === undefined) continue;
        routes.set(m.path, { kind: 'bidi', deserialize: (b) => m.requestDeserialize(b), serialize: (v) => m.responseSerialize(v), handle: handler });
      }
    },
  };
  new ReflectionService(definition).addToServer(recorder as never);
  return routes;
}

/** The call's HTTP/2 headers as a trace carrier (made only when tracing is on). */
function h2Carrier(headers: IncomingHttpHeaders): { get(key: string): unknown[] } {
  return {
    get(key) {
      const v = headers[key];
      return v === undefined ? [] : Array.isArray(v) ? v : [v];
    },
  };
}

/** Envoy's downstream client address (`attributes.source.address.socket_address.address`), for the audit line. */
function sourceAddress(req: CheckRequestObject | null): string | undefined {
  const a = (req as { attributes?: { source?: { address?: { socket_address?: { address?: unknown } } } } } | null)?.attributes?.source?.address?.socket_address?.address;
  return typeof a === 'string' && a !== '' ? a : undefined;
}
