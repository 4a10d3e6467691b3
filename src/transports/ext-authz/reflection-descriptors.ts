/**
 * proto-loader's file descriptors as a strict reflection client needs them. proto-loader (through
 * protobufjs) writes one FileDescriptorProto per package, with type references as written in the
 * .proto (`type.v3.HttpStatus`, relative) and no `dependency` list, so a client that builds a
 * descriptor pool from what reflection serves (protobuf's own, as grpcurl and Python's pool do)
 * cannot resolve a type defined in another package. This rewrites every reference to its fully
 * qualified name (`.envoy.type.v3.HttpStatus`, C++ scoping as protoc applies it), names map
 * entry types as protoc does, and lists the files each one depends on. It runs once, on the
 * package definition jitgate serves.
 */
import type { PackageDefinition } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import descriptorExt from 'protobufjs/ext/descriptor/index.js';

interface FieldLike {
  name?: string;
  typeName?: string;
}
interface MessageLike {
  name?: string;
  field?: FieldLike[];
  nestedType?: MessageLike[];
  enumType?: { name?: string }[];
  options?: { mapEntry?: boolean };
}
interface FileLike {
  name?: string;
  package?: string;
  dependency?: string[];
  messageType?: MessageLike[];
  enumType?: { name?: string }[];
  service?: { method?: { inputType?: string; outputType?: string }[] }[];
}

const FileDescriptorProto = (descriptorExt as unknown as { FileDescriptorProto: protobuf.Type }).FileDescriptorProto;

/** Fully qualified name (without the leading dot) → the file that defines it. */
function definedTypes(files: readonly FileLike[]): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (scope: string, m: MessageLike, file: string): void => {
    const fq = `${scope}.${m.name}`;
    out.set(fq, file);
    for (const e of m.enumType ?? []) out.set(`${fq}.${e.name}`, file);
    for (const n of m.nestedType ?? []) walk(fq, n, file);
  };
  for (const f of files) {
    const pkg = f.package ?? '';
    for (const m of f.messageType ?? []) walk(pkg, m, f.name!);
    for (const e of f.enumType ?? []) out.set(`${pkg}.${e.name}`, f.name!);
  }
  return out;
}

/** `name` as seen from `scope` (a dotted path), innermost scope first, as protoc resolves it. */
function resolve(name: string, scope: string, types: ReadonlyMap<string, string>): string | undefined {
  if (name.startsWith('.')) return types.has(name.slice(1)) ? name.slice(1) : undefined;
  const parts = scope === '' ? [] : scope.split('.');
  for (let i = parts.length; i >= 0; i--) {
    const candidate = [...parts.slice(0, i), name].join('.');
    if (types.has(candidate)) return candidate;
  }
  return undefined;
}

/** protoc's name for a map field's entry type: `request_headers` → `RequestHeadersEntry`. */
function entryName(field: string): string {
  return `${field.replace(/(?:^|_)([a-z0-9])/g, (_m, c: string) => c.toUpperCase())}Entry`;
}

/**
 * protobufjs names a map field's entry type after the field (`Headers`); protoc, and every strict
 * descriptor pool, requires `<CamelField>Entry`.
 */
function renameMapEntries(scope: string, m: MessageLike): void {
  for (const n of m.nestedType ?? []) {
    if (n.options?.mapEntry !== true) continue;
    const field = m.field?.find((f) => f.typeName === `.${scope}.${n.name}`);
    if (field?.name === undefined) continue;
    n.name = entryName(field.name);
    field.typeName = `.${scope}.${n.name}`;
  }
}

/** Rewrites the definition's file descriptors in place (they are shared by every entry). */
export function qualifyDescriptors(definition: PackageDefinition): void {
  let buffers: Buffer[] | undefined;
  for (const entry of Object.values(definition)) {
    const list = (entry as { fileDescriptorProtos?: Buffer[] }).fileDescriptorProtos;
    if (Array.isArray(list)) {
      buffers = list;
      break;
    }
  }
  if (buffers === undefined) return;
  const files = buffers.map((b) => FileDescriptorProto.toObject(FileDescriptorProto.decode(b), { defaults: false }) as FileLike);
  const types = definedTypes(files);
  files.forEach((f, i) => {
    const deps = new Set<string>();
    const fix = (name: string | undefined, scope: string): string | undefined => {
      if (name === undefined || name === '') return name;
      const fq = resolve(name, scope, types);
      if (fq === undefined) return name;
      const file = types.get(fq)!;
      if (file !== f.name) deps.add(file);
      return `.${fq}`;
    };
    const walk = (scope: string, m: MessageLike): void => {
      const inner = `${scope}.${m.name}`;
      for (const field of m.field ?? []) field.typeName = fix(field.typeName, inner);
      for (const n of m.nestedType ?? []) walk(inner, n);
      renameMapEntries(inner, m);
    };
    const pkg = f.package ?? '';
    for (const m of f.messageType ?? []) walk(pkg, m);
    for (const s of f.service ?? []) {
      for (const method of s.method ?? []) {
        method.inputType = fix(method.inputType, pkg);
        method.outputType = fix(method.outputType, pkg);
      }
    }
    f.dependency = [...deps].sort();
    buffers![i] = Buffer.from(FileDescriptorProto.encode(FileDescriptorProto.fromObject(f)).finish());
  });
}
