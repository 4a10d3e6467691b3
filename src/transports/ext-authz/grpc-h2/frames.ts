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

/** What keeping one chunk costs beyond its bytes (a Buffer object and its bookkeeping), roughly. */
const CHUNK_COST = 128;

/**
 * A chunk to keep until its message is whole: a small view into a much larger buffer (node:http2
 * hands DATA frames as views of its read buffer) is copied, so one byte kept never pins kilobytes
 * (a re-probe sent messages one byte per frame: hundreds of MB held against a few MB counted).
 */
function kept(chunk: Buffer): Buffer {
  return chunk.buffer.byteLength > 2 * chunk.length + CHUNK_COST ? Buffer.from(chunk) : chunk;
}

/**
 * Collects DATA chunks into messages. `push` returns the messages completed by this chunk (an
 * empty array when none), or a problem: a declared length over `maxBytes` is refused from the
 * prefix alone, before any of it is buffered. A message spread over many DATA frames (16 KiB
 * each by default) is kept as a list of chunks and joined once, when its last byte has arrived:
 * joining on every frame would copy a 4 MiB message a few hundred times.
 */
export class MessageReader {
  readonly #maxBytes: number;
  #chunks: Buffer[] = [];
  #have = 0;
  /** Bytes (prefix included) the message being collected needs; -1 until its prefix is in. */
  #need = -1;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** The common case first: one chunk holding exactly one whole message, returned without copying. */
  push(chunk: Buffer): Buffer[] | ReadProblem {
    let buf = chunk;
    if (this.#have !== 0) {
      this.#chunks.push(kept(chunk));
      this.#have += chunk.length;
      if (this.#need === -1) {
        if (this.#have < 5) return [];
        const head = Buffer.concat(this.#chunks, this.#have);
        this.#chunks = [head];
        const problem = this.#check(head, 0);
        if (problem !== undefined) return problem;
        this.#need = 5 + head.readUInt32BE(1);
      }
      if (this.#have < this.#need) return [];
      buf = Buffer.concat(this.#chunks, this.#have);
      this.#chunks = [];
      this.#have = 0;
      this.#need = -1;
    }
    const out: Buffer[] = [];
    let at = 0;
    while (buf.length - at >= 5) {
      const problem = this.#check(buf, at);
      if (problem !== undefined) return problem;
      const len = buf.readUInt32BE(at + 1);
      if (buf.length - at - 5 < len) break;
      out.push(buf.subarray(at + 5, at + 5 + len));
      at += 5 + len;
    }
    if (at < buf.length) {
      const rest = kept(at === 0 ? buf : buf.subarray(at));
      this.#chunks = [rest];
      this.#have = rest.length;
      // A prefix already in `rest` was checked by the loop above.
      this.#need = rest.length >= 5 ? 5 + rest.readUInt32BE(1) : -1;
    }
    return out;
  }

  #check(buf: Buffer, at: number): ReadProblem | undefined {
    if (buf.readUInt32BE(at + 1) > this.#maxBytes) return 'too_large';
    if (buf[at] !== 0) return 'compressed';
    return undefined;
  }

  /** Bytes of a message begun but not finished (at the end of the request: `truncated`). */
  get partial(): boolean {
    return this.#have !== 0;
  }

  /**
   * What an unfinished message holds, in bytes: its chunks plus CHUNK_COST for each, so a message
   * sent one byte per DATA frame is counted at what it costs (MAX_BUFFERED_BYTES, server.ts).
   */
  get held(): number {
    return this.#have + this.#chunks.length * CHUNK_COST;
  }
}

/** The longest delay a node timer takes; past it node fires after 1 ms, which would end the call at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * `grpc-timeout` (PROTOCOL-HTTP2.md: 1–8 digits and a unit H M S m u n) in ms, or undefined when
 * absent, invalid, or beyond what a timer can wait (≈ 24.8 days): no deadline. A review found
 * `2147484S` answered DEADLINE_EXCEEDED at once, an RPC error Envoy's failure_mode_allow turns into an allow.
 */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  const ms = grpcTimeoutMs(value);
  return ms === undefined || ms > MAX_TIMER_MS ? undefined : ms;
}

function grpcTimeoutMs(value: string | string[] | undefined): number | undefined {
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
