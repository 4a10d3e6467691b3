/**
 * Reads a file's lines as the bytes written, for `jitgate audit verify` (SPEC §12), in bounded
 * memory. Only "\n" ends a line: a "\r" before it stays part of the line, because the chain hashes
 * a line's bytes exactly as written (readline would drop it, and a CRLF copy would pass). A line
 * longer than MAX_LINE_BYTES is not collected — an audit line is a few hundred bytes, and holding a
 * 600 MiB "line" as one string is what used to end in `RangeError: Invalid string length` — it is
 * reported by number and skipped up to its newline.
 */
import { createReadStream } from 'node:fs';

/** Far above any line the gate writes (a few hundred bytes; an `act` chain a few KiB). */
export const MAX_LINE_BYTES = 4 * 1024 * 1024;

export interface RawLine {
  /** 1-based line number in the file. */
  readonly n: number;
  /** The line without its "\n"; empty when `tooLong`. */
  readonly bytes: Buffer;
  /** Longer than MAX_LINE_BYTES: its bytes were not kept. */
  readonly tooLong: boolean;
  /** The file's last line and it has no "\n" (a write cut short). */
  readonly torn: boolean;
}

/** `onChunk` sees each chunk's size (progress). */
export async function* readLines(file: string, onChunk?: (bytes: number) => void, maxLine = MAX_LINE_BYTES): AsyncGenerator<RawLine> {
  let parts: Buffer[] = [];
  let partLen = 0;
  let tooLong = false;
  let n = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    onChunk?.(chunk.length);
    let from = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, from)) {
      n++;
      const piece = chunk.subarray(from, nl);
      const long = tooLong || partLen + piece.length > maxLine;
      yield { n, bytes: long ? Buffer.alloc(0) : partLen === 0 ? piece : Buffer.concat([...parts, piece]), tooLong: long, torn: false };
      parts = [];
      partLen = 0;
      tooLong = false;
      from = nl + 1;
    }
    if (from < chunk.length && !tooLong) {
      const rest = chunk.subarray(from);
      if (partLen + rest.length > maxLine) {
        // Stop collecting: what is kept stays below maxLine whatever the line's length.
        tooLong = true;
        parts = [];
        partLen = 0;
      } else {
        // A copy: a subarray would keep the whole 1 MiB chunk alive for a few bytes.
        parts.push(Buffer.from(rest));
        partLen += rest.length;
      }
    }
  }
  if (partLen > 0 || tooLong) yield { n: n + 1, bytes: tooLong ? Buffer.alloc(0) : Buffer.concat(parts), tooLong, torn: true };
}
