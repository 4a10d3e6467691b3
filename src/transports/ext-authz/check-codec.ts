/**
 * The CheckRequest decoder of the gRPC Check path: protobufjs's generated decoder straight to a
 * message object, without proto-loader's toObject pass (the mapping layer, check-request.ts,
 * reads the decoded message as it is: absent strings are '', absent messages null, maps plain
 * objects with own keys, bytes Buffers). Loaded from jitgate's own copy of Envoy's protos
 * (proto/README.md), the same files proto-loader serves through reflection.
 */
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { StartupError } from '../../errors.ts';
import type { CheckRequestObject } from './check-request.ts';
import { PROTO_DIR } from './protos.ts';

let decoder: ((bytes: Uint8Array) => CheckRequestObject) | undefined;

/** Throws on bytes that are not a CheckRequest (the caller answers that with a denial). */
export function checkRequestDecoder(): (bytes: Uint8Array) => CheckRequestObject {
  if (decoder !== undefined) return decoder;
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(PROTO_DIR, target);
  let type: protobuf.Type;
  try {
    root.loadSync(['envoy/service/auth/v3/external_auth.proto'], { keepCase: true });
    type = root.lookupType('envoy.service.auth.v3.CheckRequest');
  } catch (err) {
    throw new StartupError(`ext_authz.grpc: cannot load the CheckRequest type from ${PROTO_DIR}: ${(err as Error).message}`, { cause: err });
  }
  decoder = (bytes) => type.decode(bytes) as unknown as CheckRequestObject;
  return decoder;
}
