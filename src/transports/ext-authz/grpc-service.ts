/**
 * Envoy's gRPC authorization service, `envoy.service.auth.v3.Authorization/Check`, plus
 * `grpc.health.v1.Health/Check` on the same server (SPEC §7).
 *
 * Every Check completes as a successful RPC carrying a CheckResponse — allow, deny, "could not
 * decide" (status 14) and malformed input alike — because Envoy counts any RPC error as a service
 * failure, which `failure_mode_allow: true` would turn into an allow. The handler therefore never
 * throws past its own try/catch and encodes its answer itself, falling back to the precomputed
 * `internal_error` denial if even that fails. Answers are bytes: denials are encoded at start and
 * an allow once per cached token (check-response.ts), so a hot check encodes nothing.
 */
import { Server, ServerCredentials, status as grpcStatus, type Metadata, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { deny, unavailable, type Decision } from '../../core/decision.ts';
import { StartupError } from '../../errors.ts';
import type { Listener, TransportContext } from '../context.ts';
import { checkInputFrom, type CheckRequestObject } from './check-request.ts';
import { CheckResponses } from './check-response.ts';
import { decideSafely, observe } from './judge.ts';
import { AUTHORIZATION_SERVICE, encodeResponse, loadProtos } from './protos.ts';
import type { UpstreamHeaders } from './upstream-headers.ts';

const NO_STRAY: readonly string[] = Object.freeze([]);

/** Envoy caps request headers at 8 MiB (max_request_headers_kb); leave room for the rest of a CheckRequest. */
const MAX_RECEIVE_BYTES = 32 * 1024 * 1024;

const SERVING = 1;
const NOT_SERVING = 2;

export interface GrpcServiceOptions {
  readonly host: string;
  readonly port: number;
  readonly upstream: UpstreamHeaders;
  /** Serve gRPC server reflection (v1 and v1alpha) for the two services. */
  readonly reflection?: boolean;
}

export async function startGrpcService(ctx: TransportContext, opts: GrpcServiceOptions): Promise<Listener> {
  const protos = loadProtos();
  const responses = new CheckResponses(opts.upstream, ctx.gate.policy, (m) => encodeResponse(protos.authorization, 'Check', m));
  const internalError = responses.denied('internal_error').bytes;
  const isStray = opts.upstream.isStray;

  const server = new Server({ 'grpc.max_receive_message_length': MAX_RECEIVE_BYTES });

  /** Encodes and sends the answer, then records it; never throws (grpc-js would turn a throw into an RPC error). */
  const finish = (callback: sendUnaryData<Buffer>, decision: Decision, method: string, stray: readonly string[], startNs: bigint, client: string | undefined, metadata: Metadata): void => {
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
    callback(null, bytes);
    // Envoy sends its own trace context in the call's metadata (not in the checked request's headers).
    observe(ctx, 'ext_authz_grpc', method, decision, httpStatus, startNs, client, metadata);
  };

  server.addService(protos.authorization, {
    Check(call: ServerUnaryCall<CheckRequestObject | null, Buffer>, callback: sendUnaryData<Buffer>): void {
      const startNs = process.hrtime.bigint();
      let checked: ReturnType<typeof checkInputFrom>;
      try {
        checked = checkInputFrom(call.request, isStray);
      } catch (err) {
        ctx.logger.error({ err }, 'reading a CheckRequest failed; answering internal_error');
        finish(callback, unavailable('internal_error'), '', NO_STRAY, startNs, undefined, call.metadata);
        return;
      }
      if (checked === null) {
        finish(callback, deny('missing_attributes'), '', NO_STRAY, startNs, undefined, call.metadata);
        return;
      }
      const { input, stray } = checked;
      const client = sourceAddress(call.request);
      // decideSafely never throws or rejects; a cached token is decided in this tick, as in the proxy.
      const decision = decideSafely(ctx, 'ext_authz_grpc', input);
      if (decision instanceof Promise) void decision.then((d) => finish(callback, d, input.method, stray, startNs, client, call.metadata));
      else finish(callback, decision, input.method, stray, startNs, client, call.metadata);
    },
  });

  // grpcurl, grpcui and friends list and call the services without being handed the .proto files.
  if (opts.reflection !== false) new ReflectionService(protos.definition).addToServer(server);

  server.addService(protos.health, {
    Check(call: ServerUnaryCall<{ service?: string } | null, object>, callback: sendUnaryData<object>): void {
      const service = call.request?.service ?? '';
      if (service !== '' && service !== AUTHORIZATION_SERVICE) {
        callback({ code: grpcStatus.NOT_FOUND, details: 'unknown service' });
        return;
      }
      callback(null, { status: ctx.gate.readiness().ready ? SERVING : NOT_SERVING });
    },
  });

  const address = `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  }).catch((err: Error) => {
    throw new StartupError(`ext_authz.grpc.listen: cannot listen on ${address}: ${err.message}`, { cause: err });
  });

  return {
    name: 'ext_authz_grpc',
    host: opts.host,
    port,
    close: (graceMs: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), graceMs);
        timer.unref();
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

/** Envoy's downstream client address (`attributes.source.address.socket_address.address`), for the audit line. */
function sourceAddress(req: CheckRequestObject | null): string | undefined {
  const a = (req as { attributes?: { source?: { address?: { socket_address?: { address?: unknown } } } } } | null)?.attributes?.source?.address?.socket_address?.address;
  return typeof a === 'string' && a !== '' ? a : undefined;
}
