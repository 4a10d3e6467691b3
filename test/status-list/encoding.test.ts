/**
 * The list format (draft-ietf-oauth-status-list §4): jitgate's encoder, a second independent encoder
 * and the OpenWallet Foundation's @sd-jwt/jwt-status-list must all agree, for 1, 2, 4 and 8 bits; bad
 * `lst` values (not base64url, truncated, not ZLIB, a zip bomb) are refused with a reason, never thrown.
 */
import { deflateRawSync, deflateSync, gzipSync, inflateSync } from 'node:zlib';
import { getListFromStatusListJWT, StatusList } from '@sd-jwt/jwt-status-list';
import { describe, expect, it } from 'vitest';
import { decodeLst, statusAt, type StatusBits } from '../../src/status-list/decode.ts';
import { encodeLst, packStatuses } from '../../src/status-list/encode.ts';
import { makeKey } from '../fixtures/keys.ts';
import { cliList } from './list-server.ts';
import { independentLst, independentStatus } from './independent-encoder.ts';

const BITS: readonly StatusBits[] = [1, 2, 4, 8];

/** Deterministic statuses: every value 0..2^bits-1 appears, most entries 0 as in real lists. */
function statuses(size: number, bits: number): number[] {
  let x = 0x2545f491;
  return Array.from({ length: size }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const r = (x >>> 0) % 10;
    return r < 6 ? 0 : (x >>> 8) % (1 << bits);
  });
}

function asMap(values: readonly number[]): Map<number, number> {
  const m = new Map<number, number>();
  values.forEach((v, i) => v !== 0 && m.set(i, v));
  return m;
}

function decodeAll(lst: string, bits: StatusBits, size: number): number[] {
  const bytes = decodeLst(lst, 1 << 20);
  if (typeof bytes === 'string') throw new Error(bytes);
  return Array.from({ length: size }, (_, i) => statusAt(bytes, bits, i));
}

describe('status list encoding', () => {
  it('decodes the examples of the draft (§4.1: 1 bit and 2 bits)', () => {
    const one = decodeLst('eNrbuRgAAhcBXQ', 1024);
    expect(one).toEqual(new Uint8Array([0xb9, 0xa3]));
    expect(Array.from({ length: 16 }, (_, i) => statusAt(one as Uint8Array, 1, i))).toEqual([1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]);
    const two = decodeLst('eNo76fITAAPfAgc', 1024);
    expect(two).toEqual(new Uint8Array([0xc9, 0x44, 0xf9]));
    expect(Array.from({ length: 12 }, (_, i) => statusAt(two as Uint8Array, 2, i))).toEqual([1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]);
  });

  it('decodes the example list of docs/status-list.md as documented', () => {
    const bytes = decodeLst('eNpz4GBgYGFgYAAAAlAATQ', 1024) as Uint8Array;
    expect([...bytes]).toEqual([0x40, 0x08, 0, 0, 0x04, 0, 0, 0]);
    expect([3, 5, 17, 0].map((i) => statusAt(bytes, 2, i))).toEqual([1, 2, 1, 0]);
  });

  it.each(BITS)('jitgate and the independent encoder decode the same at %i bit(s), both ways', async (bits) => {
    const values = statuses(1000, bits);
    const ours = encodeLst(packStatuses(values.length, bits, asMap(values)));
    const theirs = await independentLst(values, bits);
    expect(decodeAll(ours, bits, values.length)).toEqual(values);
    expect(decodeAll(theirs, bits, values.length)).toEqual(values);
    const ourBytes = inflateSync(Buffer.from(ours, 'base64url'));
    expect(values.map((_, i) => independentStatus(ourBytes, bits, i))).toEqual(values);
  });

  it.each(BITS)('@sd-jwt/jwt-status-list reads our lists and we read its lists at %i bit(s)', async (bits) => {
    const values = statuses(777, bits);
    const ours = encodeLst(packStatuses(values.length, bits, asMap(values)));
    const read = StatusList.decompressStatusList(ours, bits);
    expect(values.map((_, i) => read.getStatus(i))).toEqual(values);

    const theirs = new StatusList(values, bits).compressStatusList();
    expect(decodeAll(theirs, bits, values.length)).toEqual(values);

    // The whole signed list token as `jitgate status-list` writes it.
    const key = await makeKey('ES256', 'k');
    const jwt = await cliList(key, { uri: 'https://broker.internal/status/1', bits, size: values.length, statuses: asMap(values) });
    const fromJwt = getListFromStatusListJWT(jwt);
    expect(fromJwt.getBitsPerStatus()).toBe(bits);
    expect(values.map((_, i) => fromJwt.getStatus(i))).toEqual(values);
  });

  it('statusAt refuses indexes outside the list (negative, past the end, NaN)', () => {
    const bytes = packStatuses(16, 2, new Map([[15, 3]]));
    expect(statusAt(bytes, 2, 15)).toBe(3);
    expect(statusAt(bytes, 2, 16)).toBe(-1);
    expect(statusAt(bytes, 2, -1)).toBe(-1);
    expect(statusAt(bytes, 2, Number.NaN)).toBe(-1);
    expect(statusAt(bytes, 8, 4)).toBe(-1);
  });

  it('refuses lst that is not base64url, truncated or not a ZLIB stream', () => {
    const good = encodeLst(packStatuses(4096, 1, new Map([[7, 1]])));
    expect(decodeLst('', 1024)).toBe('status_list_encoding');
    expect(decodeLst('ab+/', 1024)).toBe('status_list_encoding'); // base64, not base64url
    expect(decodeLst('eNrbuRgAAhcBXQ==', 1024)).toBe('status_list_encoding'); // padding is not base64url as JWS uses it
    expect(decodeLst('A', 1024)).toBe('status_list_encoding');
    expect(decodeLst(good.slice(0, -4), 1 << 20)).toBe('status_list_encoding');
    expect(decodeLst(Buffer.from('plain bytes, no zlib header').toString('base64url'), 1024)).toBe('status_list_encoding');
    // Raw DEFLATE without the ZLIB wrapper is not what the draft specifies.
    expect(decodeLst(deflateRawSync(Buffer.alloc(16)).toString('base64url'), 1024)).toBe('status_list_encoding');
    // Nor is a gzip wrapper, a stream needing a preset dictionary (FDICT), or one whose Adler-32 is wrong.
    expect(decodeLst(gzipSync(Buffer.alloc(16)).toString('base64url'), 1024)).toBe('status_list_encoding');
    expect(decodeLst(deflateSync(Buffer.alloc(16), { dictionary: Buffer.from('dict') }).toString('base64url'), 1024)).toBe('status_list_encoding');
    const badSum = deflateSync(Buffer.alloc(16));
    badSum[badSum.length - 1]! ^= 1;
    expect(decodeLst(badSum.toString('base64url'), 1024)).toBe('status_list_encoding');
    // Any valid ZLIB stream is one: stored blocks (level 0) decode to the same bytes.
    expect(decodeLst(deflateSync(Buffer.from([0xb9, 0xa3]), { level: 0 }).toString('base64url'), 1024)).toEqual(new Uint8Array([0xb9, 0xa3]));
  });

  it('accepts exactly one spelling: canonical base64url of one complete ZLIB stream and nothing after it', () => {
    const one = deflateSync(Buffer.from([0xb9, 0xa3]));
    const two = deflateSync(Buffer.from([0xff, 0xff]));
    expect(decodeLst(one.toString('base64url'), 1024)).toEqual(new Uint8Array([0xb9, 0xa3]));
    // Trailing garbage after a valid stream.
    expect(decodeLst(Buffer.concat([one, Buffer.from('xyz')]).toString('base64url'), 1024)).toBe('status_list_encoding');
    // A second stream another inflater might read on (a parser differential), even an empty one.
    expect(decodeLst(Buffer.concat([one, two]).toString('base64url'), 1024)).toBe('status_list_encoding');
    expect(decodeLst(Buffer.concat([one, deflateSync(Buffer.alloc(0))]).toString('base64url'), 1024)).toBe('status_list_encoding');
    // One trailing zero byte is trailing data too.
    expect(decodeLst(Buffer.concat([one, Buffer.alloc(1)]).toString('base64url'), 1024)).toBe('status_list_encoding');
    // Length ≡ 1 (mod 4): no byte count encodes to that.
    expect(decodeLst('eNrbuRgAAhcBXQAAA', 1024)).toBe('status_list_encoding');
    // The draft's example with a non-canonical last character: same bytes, non-zero trailing bits.
    expect(decodeLst('eNrbuRgAAhcBXQ', 1024)).toEqual(new Uint8Array([0xb9, 0xa3]));
    expect(decodeLst('eNrbuRgAAhcBXR', 1024)).toBe('status_list_encoding');
    expect(decodeLst('eNo76fITAAPfAgc', 1024)).toEqual(new Uint8Array([0xc9, 0x44, 0xf9]));
    expect(decodeLst('eNo76fITAAPfAgd', 1024)).toBe('status_list_encoding');
  });

  it('refuses a zip bomb without inflating it: 64 MiB of zeros against a 1 MiB bound', () => {
    const bomb = deflateSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 }).toString('base64url');
    expect(bomb.length).toBeLessThan(128 * 1024);
    const before = process.memoryUsage().arrayBuffers;
    expect(decodeLst(bomb, 1024 * 1024)).toBe('status_list_too_large');
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
    // Exactly at the bound is fine.
    expect(decodeLst(deflateSync(Buffer.alloc(1024)).toString('base64url'), 1024)).toEqual(new Uint8Array(1024));
  });

  it('packStatuses refuses values and indexes that do not fit', () => {
    expect(() => packStatuses(8, 1, new Map([[0, 2]]))).toThrow(RangeError);
    expect(() => packStatuses(8, 2, new Map([[8, 1]]))).toThrow(RangeError);
    expect(() => packStatuses(0, 1, new Map())).toThrow(RangeError);
  });
});
