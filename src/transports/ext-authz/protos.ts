/**
 * Loads jitgate's own minimal copies of Envoy's ext_authz protos and the gRPC health proto
 * (proto/README.md says where each field number was checked). The directory is resolved from
 * this module's URL: src/transports/ext-authz and dist/transports/ext-authz both sit three levels
 * below the package root, so the same code finds `proto/` from source and from a build.
 *
 * The request deserializer never throws: bytes that are not a CheckRequest decode to an empty
 * message, which the service answers as a `missing_attributes` denial. A throwing deserializer would make grpc-js
 * answer with an RPC error, and Envoy counts an RPC error as a service failure (fail-open under
 * failure_mode_allow; SPEC §7).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type MethodDefinition, type PackageDefinition } from '@grpc/proto-loader';
import { StartupError } from '../../errors.ts';
import { qualifyDescriptors } from './reflection-descriptors.ts';

export const PROTO_DIR = fileURLToPath(new URL('../../../proto/', import.meta.url));

export const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization';
export const HEALTH_SERVICE = 'grpc.health.v1.Health';

const FILES = ['envoy/service/auth/v3/external_auth.proto', 'grpc/health/v1/health.proto'];

/** keepCase: field names as in the .proto; defaults off so an absent field reads as undefined. */
export const LOADER_OPTIONS = Object.freeze({ keepCase: true, longs: String, enums: Number, defaults: false, oneofs: true, includeDirs: [PROTO_DIR] });

export interface ExtAuthzProtos {
  readonly authorization: ServiceDefinition;
  readonly health: ServiceDefinition;
  /** Both files as loaded, for gRPC server reflection. */
  readonly definition: PackageDefinition;
}

let loaded: ExtAuthzProtos | undefined;

const UNDECODABLE: object = Object.freeze({});

/** What a hardened method's decoder returned for bytes that did not decode. */
export function isUndecodable(request: object): boolean {
  return request === UNDECODABLE;
}

/** Loads once per process; a missing or broken proto directory is a StartupError. */
export function loadProtos(): ExtAuthzProtos {
  if (loaded !== undefined) return loaded;
  if (!existsSync(PROTO_DIR)) throw new StartupError(`ext_authz.grpc: proto directory ${PROTO_DIR} is missing from this installation`);
  let def: ReturnType<typeof loadSync>;
  try {
    def = loadSync(FILES, LOADER_OPTIONS);
  } catch (err) {
    throw new StartupError(`ext_authz.grpc: cannot load protos from ${PROTO_DIR}: ${(err as Error).message}`, { cause: err });
  }
  qualifyDescriptors(def);
  const authorization = def[AUTHORIZATION_SERVICE] as unknown as Record<string, MethodDefinition<object, object>>;
  const health = def[HEALTH_SERVICE] as unknown as Record<string, MethodDefinition<object, object>>;
  loaded = Object.freeze({ authorization: hardened(authorization), health: hardened(health), definition: def });
  return loaded;
}

/**
 * Wraps each method: requests that fail to decode become an empty message (not null: grpc-js
 * treats a falsy request as "no request message" and fails the RPC), and a response may be a Buffer
 * already encoded by the handler (which encodes inside its own try/catch, see grpc-service.ts).
 */
function hardened(service: Record<string, MethodDefinition<object, object>>): ServiceDefinition {
  const out: Record<string, unknown> = {};
  for (const [name, m] of Object.entries(service)) {
    out[name] = {
      ...m,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return m.requestDeserialize(bytes);
        } catch {
          return UNDECODABLE;
        }
      },
      responseSerialize: (value: object | Buffer) => (Buffer.isBuffer(value) ? value : m.responseSerialize(value)),
    };
  }
  return out as unknown as ServiceDefinition;
}

/** Encodes a response object with the method's own serializer (for precomputing). */
export function encodeResponse(service: ServiceDefinition, method: string, value: object): Buffer {
  const m = (service as unknown as Record<string, MethodDefinition<object, object | Buffer>>)[method];
  if (m === undefined) throw new TypeError(`no method ${method}`);
  return m.responseSerialize(value);
}
