/**
 * The Envoy-shaped ext_authz CheckRequest every gRPC load client sends (grpc-load.ts, h2load.ts), encoded once
 * with jitgate's protos, and its gRPC framing (a 5-byte prefix: not compressed, big-endian length).
 */
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import { LOADER_OPTIONS } from '../../src/transports/ext-authz/protos.ts';

export const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
/** The request headers of a Check call besides the pseudo-headers. */
export const CHECK_HEADERS = { 'content-type': 'application/grpc', te: 'trailers' } as const;

const def = loadSync(['envoy/service/auth/v3/external_auth.proto'], LOADER_OPTIONS);
export const checkMethod = (def['envoy.service.auth.v3.Authorization'] as unknown as Record<string, MethodDefinition<object, { status?: { code?: number } }>>).Check!;

/** The serialized CheckRequest for an HTTP request to orders.bench.internal. */
export function checkRequest(method: string, path: string, authorization: string): Buffer {
  return checkMethod.requestSerialize({
    attributes: {
      request: {
        http: {
          method,
          path,
          host: 'orders.bench.internal',
          scheme: 'http',
          protocol: 'HTTP/1.1',
          headers: { ':authority': 'orders.bench.internal', ':method': method, ':path': path, authorization, 'user-agent': 'bench' },
        },
      },
    },
  });
}

/** A message as it travels in a gRPC DATA frame. */
export function grpcFramed(message: Buffer): Buffer {
  const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), message]);
  framed.writeUInt32BE(message.length, 1);
  return framed;
}
