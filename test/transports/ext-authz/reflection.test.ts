/**
 * gRPC server reflection on the ext_authz gRPC port (`ext_authz.grpc.reflection`, default on), over
 * the standard grpc.reflection.v1 protocol as grpcurl speaks it: list the services, fetch the file
 * that defines Check. Off, the reflection service is not there at all.
 */
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { credentials, loadPackageDefinition, status, type ClientDuplexStream } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type protobuf from 'protobufjs';
import descriptorExt from 'protobufjs/ext/descriptor/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestKeys, type TestKeys } from '../../fixtures/gate.ts';
import { startHarness, type Harness } from './helpers.ts';

// The standard reflection protos, as published with @grpc/reflection.
const PROTO_ROOT = join(dirname(createRequire(import.meta.url).resolve('@grpc/reflection/package.json')), 'build/proto');
const def = loadSync('grpc/reflection/v1/reflection.proto', { includeDirs: [PROTO_ROOT], keepCase: true, defaults: true, oneofs: true });
// biome-ignore lint: the generated client has no static type
const pkg = loadPackageDefinition(def) as any;

const FileDescriptorProto = (descriptorExt as unknown as { FileDescriptorProto: protobuf.Type }).FileDescriptorProto;

interface ReflectionAnswer {
  readonly message_response: string;
  readonly list_services_response?: { readonly service: { readonly name: string }[] };
  readonly file_descriptor_response?: { readonly file_descriptor_proto: Buffer[] };
  readonly error_response?: { readonly error_code: number };
}

async function ask(port: number, requests: object[]): Promise<ReflectionAnswer[]> {
  const client = new pkg.grpc.reflection.v1.ServerReflection(`127.0.0.1:${port}`, credentials.createInsecure());
  const call = client.ServerReflectionInfo() as ClientDuplexStream<object, ReflectionAnswer>;
  const answers: ReflectionAnswer[] = [];
  const failed: Error[] = [];
  call.on('data', (a: ReflectionAnswer) => answers.push(a));
  call.on('error', (e: Error) => failed.push(e));
  for (const r of requests) call.write(r);
  call.end();
  await Promise.race([once(call, 'end'), once(call, 'error')]).catch(() => undefined);
  client.close();
  if (failed.length > 0) throw failed[0];
  return answers;
}

let keys: TestKeys;
let on: Harness;
let off: Harness;

beforeAll(async () => {
  keys = await makeTestKeys();
  on = await startHarness(keys);
  off = await startHarness(keys, (c) => (c.ext_authz.grpc.reflection = false));
});
afterAll(async () => {
  await on?.close();
  await off?.close();
});

describe('gRPC server reflection', () => {
  it('lists the Authorization and Health services and serves the file that defines Check', async () => {
    const [list, file] = await ask(on.grpcPort, [{ list_services: '' }, { file_containing_symbol: 'envoy.service.auth.v3.Authorization' }]);
    const names = list!.list_services_response!.service.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(['envoy.service.auth.v3.Authorization', 'grpc.health.v1.Health']));
    const files = file!.file_descriptor_response!.file_descriptor_proto.map((b) => Buffer.from(b).toString('latin1'));
    // proto-loader names files by package; the one for envoy.service.auth.v3 declares the service and its messages.
    const authz = files.find((f) => f.includes('envoy.service.auth.v3') && f.includes('Authorization'));
    expect(authz).toBeDefined();
    for (const name of ['Check', 'CheckRequest', 'CheckResponse', 'OkHttpResponse', 'DeniedHttpResponse']) expect(authz).toContain(name);
    // …and with it the files it depends on (the request attributes, HTTP status, header values).
    expect(files.length).toBeGreaterThan(1);
  });

  it('serves descriptors a strict pool accepts: qualified references, declared dependencies, protoc-named map entries', async () => {
    const [file] = await ask(on.grpcPort, [{ file_containing_symbol: 'envoy.service.auth.v3.Authorization' }]);
    type Msg = { name: string; field?: { name: string; typeName?: string }[]; nestedType?: Msg[]; enumType?: { name: string }[]; options?: { mapEntry?: boolean } };
    type File = { name: string; package?: string; dependency?: string[]; messageType?: Msg[]; enumType?: { name: string }[]; service?: { method: { inputType: string; outputType: string }[] }[] };
    const files = file!.file_descriptor_response!.file_descriptor_proto.map((b) => FileDescriptorProto.toObject(FileDescriptorProto.decode(b)) as File);
    // Where every type is defined, by fully qualified name.
    const definedIn = new Map<string, string>();
    const collect = (scope: string, m: Msg, f: string): void => {
      definedIn.set(`${scope}.${m.name}`, f);
      for (const e of m.enumType ?? []) definedIn.set(`${scope}.${m.name}.${e.name}`, f);
      for (const n of m.nestedType ?? []) collect(`${scope}.${m.name}`, n, f);
    };
    for (const f of files) {
      for (const m of f.messageType ?? []) collect(`.${f.package}`, m, f.name);
      for (const e of f.enumType ?? []) definedIn.set(`.${f.package}.${e.name}`, f.name);
    }
    let references = 0;
    const check = (ref: string, f: File): void => {
      references++;
      expect(ref.startsWith('.'), ref).toBe(true);
      const home = definedIn.get(ref);
      expect(home, ref).toBeDefined();
      if (home !== f.name) expect(f.dependency ?? [], `${f.name} → ${ref}`).toContain(home);
    };
    const walk = (m: Msg, f: File): void => {
      for (const field of m.field ?? []) if (field.typeName) check(field.typeName, f);
      for (const n of m.nestedType ?? []) {
        if (n.options?.mapEntry) {
          // protoc's rule: a map field `foo_bar` has its entry type FooBarEntry beside it.
          const owner = (m.field ?? []).find((x) => x.typeName?.endsWith(`.${m.name}.${n.name}`));
          expect(n.name).toBe(`${owner!.name.replace(/(?:^|_)([a-z0-9])/g, (_x, c: string) => c.toUpperCase())}Entry`);
        }
        walk(n, f);
      }
    };
    for (const f of files) {
      for (const m of f.messageType ?? []) walk(m, f);
      for (const s of f.service ?? []) for (const method of s.method) (check(method.inputType, f), check(method.outputType, f));
    }
    expect(references).toBeGreaterThan(10);
  });

  it('an unknown symbol is an error answer inside the stream, not a broken stream', async () => {
    const [a] = await ask(on.grpcPort, [{ file_containing_symbol: 'no.such.Service' }]);
    expect(a!.error_response?.error_code).toBe(status.NOT_FOUND);
  });

  it('off: the reflection service is not there', async () => {
    await expect(ask(off.grpcPort, [{ list_services: '' }])).rejects.toMatchObject({ code: status.UNIMPLEMENTED });
  });
});
