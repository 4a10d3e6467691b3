/**
 * Where an audit chain left off in an existing log file (SPEC §12): the last complete line of the
 * chain, found by reading the file backwards in blocks — never the whole file, which may be
 * gigabytes. Other log lines and other chains (cluster workers share the file) are skipped.
 */
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { parseJson } from '../core/json-parse.ts';

const BLOCK = 256 * 1024;
/** How far back to look before giving up and starting a new chain. */
const MAX_SCAN = 64 * 1024 * 1024;

export interface ChainTail {
  readonly seq: number;
  /** Hex SHA-256 of the line's bytes (without its newline). */
  readonly hash: string;
}

export interface TailInfo {
  /** The last line of `chain`, or undefined when none was found within the scanned range. */
  readonly last: ChainTail | undefined;
  /** False when the file ends in a partial line (a write cut short by a crash). */
  readonly endsWithNewline: boolean;
  /** The file did not exist or was empty. */
  readonly empty: boolean;
}

/** A chain line of this chain, or undefined. The cheap substring test spares JSON.parse for other lines. */
function chainLine(bytes: Buffer, chain: string | undefined): ChainTail | undefined {
  if (bytes.indexOf('"prev":"') === -1) return undefined;
  let v: Record<string, unknown>;
  try {
    v = parseJson(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || !Number.isSafeInteger(v.seq) || typeof v.prev !== 'string') return undefined;
  if ((typeof v.chain === 'string' ? v.chain : undefined) !== chain) return undefined;
  return { seq: v.seq as number, hash: createHash('sha256').update(bytes).digest('hex') };
}

/**
 * Undefined when `file` is a pipe or a device (`/dev/stdout`, a log shipper's FIFO): those cannot be
 * read back, and opening a FIFO to read would wait for a writer.
 */
export async function readChainTail(file: string, chain: string | undefined): Promise<TailInfo | undefined> {
  let fh;
  try {
    if (!(await stat(file)).isFile()) return undefined;
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { last: undefined, endsWithNewline: true, empty: true };
    throw err;
  }
  try {
    const size = (await fh.stat()).size;
    if (size === 0) return { last: undefined, endsWithNewline: true, empty: true };
    const lastByte = Buffer.alloc(1);
    await fh.read(lastByte, 0, 1, size - 1);
    const endsWithNewline = lastByte[0] === 0x0a;
    // `carry` is the start of a line whose beginning lies in the block before (further back).
    let carry = Buffer.alloc(0);
    let pos = size;
    let first = true;
    while (pos > 0 && size - pos < MAX_SCAN) {
      const len = Math.min(BLOCK, pos);
      pos -= len;
      const block = Buffer.alloc(len);
      await fh.read(block, 0, len, pos);
      let buf = Buffer.concat([block, carry]);
      if (first) {
        first = false;
        // A partial last line (no newline) is simply not valid JSON, so it is passed over below.
        if (endsWithNewline) buf = buf.subarray(0, buf.length - 1);
      }
      // Lines from the end backwards; the first piece may be partial unless we are at the file start.
      let stop = buf.length;
      for (let nl = buf.lastIndexOf(0x0a, stop - 1); nl !== -1; nl = stop > 0 ? buf.lastIndexOf(0x0a, stop - 1) : -1) {
        const found = chainLine(buf.subarray(nl + 1, stop), chain);
        if (found !== undefined) return { last: found, endsWithNewline, empty: false };
        stop = nl;
      }
      carry = Buffer.from(buf.subarray(0, stop));
      if (pos === 0 && carry.length > 0) {
        const found = chainLine(carry, chain);
        if (found !== undefined) return { last: found, endsWithNewline, empty: false };
      }
    }
    return { last: undefined, endsWithNewline, empty: false };
  } finally {
    await fh.close();
  }
}
