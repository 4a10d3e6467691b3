/**
 * gRPC's length-prefixed messages on HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md): each message is a
 * 1-byte compressed flag, a 4-byte big-endian length and the bytes. jitgate advertises no
 * compression, so a message with the flag set is one it cannot read.
 */

/** Why a request's messages could not be read; each becomes its own answer (grpc-server.ts). */
export type ReadProblem = 'too_large' | 'compressed' | 'truncated' | 'extra_message';

export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/**
 * Collects DATA chunks into messages. `push` returns the messages completed by this chunk (an
 * empty array when none), or a problem: a declared length over `maxBytes` is refused from the
 * prefix alone, before any of it is buffered.
 */
export class MessageReader {
  readonly #maxBytes: number;
  #pending: Buffer | undefined;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** The common case first: one chunk holding exactly one whole message, returned without copying. */
  push(chunk: Buffer): Buffer[] | ReadProblem {
    let buf = chunk;
    if (this.#pending !== undefined) {
      buf = Buffer.concat([this.#pending, chunk]);
      this.#pending = undefined;
    }
    const out: Buffer[] = [];
    let at = 0;
    while (buf.length - at >= 5) {
      const len = buf.readUInt32BE(at + 1);
      if (len > this.#maxBytes) return 'too_large';
      if (buf[at] !== 0) return 'compressed';
      if (buf.length - at - 5 < len) break;
      out.push(buf.subarray(at + 5, at + 5 + len));
      at += 5 + len;
    }
    if (at < buf.length) this.#pending = at === 0 ? buf : buf.subarray(at);
    return out;
  }

  /** Bytes of a message begun but not finished (at the end of the request: `truncated`). */
  get partial(): boolean {
    return this.#pending !== undefined;
  }
}

/** `grpc-timeout` (PROTOCOL-HTTP2.md: 1–8 digits and a unit H M S m u n) in ms, or undefined when absent or invalid. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || value.length < 2 || value.length > 9) return undefined;
  const digits = value.slice(0, -1);
  for (let i = 0; i < digits.length; i++) {
    const c = digits.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return undefined;
  }
  const n = Number(digits);
  switch (value[value.length - 1]) {
    case 'H':
      return n * 3_600_000;
    case 'M':
      return n * 60_000;
    case 'S':
      return n * 1000;
    case 'm':
      return n;
    case 'u':
      return n / 1000;
    case 'n':
      return n / 1_000_000;
    default:
      return undefined;
  }
}
