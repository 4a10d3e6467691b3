import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { frame, MessageReader, parseGrpcTimeout } from '../../../src/transports/ext-authz/grpc-h2/frames.ts';

describe('gRPC length-prefixed messages', () => {
  it('any split of any sequence of messages into chunks yields the same messages', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 5 }), fc.array(fc.integer({ min: 1, max: 400 }), { maxLength: 20 }), (messages, cuts) => {
        const wire = Buffer.concat(messages.map((m) => frame(m)));
        const reader = new MessageReader(1000);
        const got: Buffer[] = [];
        let at = 0;
        for (const c of [...cuts, wire.length]) {
          if (at >= wire.length) break;
          const r = reader.push(wire.subarray(at, Math.min(wire.length, at + c)));
          expect(typeof r).not.toBe('string');
          got.push(...(r as Buffer[]));
          at += c;
        }
        expect(got.map((b) => [...b])).toEqual(messages.map((m) => [...m]));
        expect(reader.partial).toBe(false);
      }),
    );
  });

  it('refuses a declared length over the limit from the prefix, even when the prefix arrives byte by byte', () => {
    const wire = frame(Buffer.alloc(1001));
    const reader = new MessageReader(1000);
    let r: ReturnType<MessageReader['push']> = [];
    for (let i = 0; i < 5 && typeof r !== 'string'; i++) r = reader.push(wire.subarray(i, i + 1));
    expect(r).toBe('too_large');
    expect(new MessageReader(1000).push(wire)).toBe('too_large');
  });

  it('refuses a compressed message and reports a message left incomplete', () => {
    const c = frame(Buffer.from('abc'));
    c[0] = 1;
    expect(new MessageReader(1000).push(c)).toBe('compressed');
    const reader = new MessageReader(1000);
    expect(reader.push(frame(Buffer.from('abcdef')).subarray(0, 7))).toEqual([]);
    expect(reader.partial).toBe(true);
  });

  it('a 4 MiB message in 16 KiB frames: nothing until its last byte, then the whole message', () => {
    const wire = frame(Buffer.alloc(4 * 1024 * 1024, 7));
    const reader = new MessageReader(4 * 1024 * 1024);
    const outs: (Buffer[] | string)[] = [];
    for (let i = 0; i < wire.length; i += 16_384) outs.push(reader.push(wire.subarray(i, i + 16_384)));
    expect(outs.slice(0, -1).every((o) => Array.isArray(o) && o.length === 0)).toBe(true);
    const last = outs.at(-1) as Buffer[];
    expect(last).toHaveLength(1);
    expect(last[0]!.length).toBe(4 * 1024 * 1024);
    expect(last[0]!.every((b) => b === 7)).toBe(true);
    expect(reader.partial).toBe(false);
  });

  it('counts an unfinished message at what it costs: each kept chunk too, so one byte per frame is not cheap (a re-probe)', () => {
    const reader = new MessageReader(1 << 20);
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(1000, 1);
    expect(reader.push(prefix)).toEqual([]);
    const slab = Buffer.alloc(64 * 1024, 7); // node:http2 hands frames as views of a read buffer like this
    for (let i = 0; i < 100; i++) expect(reader.push(slab.subarray(i, i + 1))).toEqual([]);
    // 5 + 100 bytes in 101 chunks, each counted at its bookkeeping cost as well.
    expect(reader.held).toBe(105 + 101 * 128);
    const rest = reader.push(Buffer.alloc(900, 7));
    expect(rest).toHaveLength(1);
    expect((rest as Buffer[])[0]!.length).toBe(1000);
    expect(reader.held).toBe(0);
  });

  it('grpc-timeout: units and malformed values', () => {
    expect(parseGrpcTimeout('200m')).toBe(200);
    expect(parseGrpcTimeout('5S')).toBe(5000);
    expect(parseGrpcTimeout('1H')).toBe(3_600_000);
    expect(parseGrpcTimeout('2M')).toBe(120_000);
    expect(parseGrpcTimeout('1500u')).toBe(1.5);
    expect(parseGrpcTimeout('3000000n')).toBe(3);
    for (const bad of [undefined, '', 'm', '12', '123456789m', '-1m', '1x', '1.5S']) expect(parseGrpcTimeout(bad)).toBeUndefined();
  });

  it('grpc-timeout beyond what a timer can wait (2^31 − 1 ms) is no deadline, not an immediate one (a review)', () => {
    expect(parseGrpcTimeout('2147483S')).toBe(2_147_483_000);
    for (const long of ['2147484S', '99999999H', '99999999M']) expect(parseGrpcTimeout(long)).toBeUndefined();
  });
});
