/**
 * How the log file is written (src/observability/logger.ts): lines waiting while a write is under way go out
 * together, up to 1 MiB a write. A probe flooded a gate with 401s carrying 8 KiB paths: each 64 KiB batch was one
 * write, one at a time, each completion waiting for a busy event loop, so the file got about 8 MB/s and 87,116 of
 * 96,520 audit lines were dropped — allows included.
 */
import fs from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { createDestination, type LineBatch } from '../../src/observability/logger.ts';

const dirs: string[] = [];
const originalWrite = fs.write;
afterEach(async () => {
  fs.write = originalWrite;
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

it('4 MiB of lines written at once reach the file in a handful of writes, not one per 64 KiB batch', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jitgate-write-size-'));
  dirs.push(dir);
  const path = join(dir, 'audit.log');
  const dest = createDestination(path) as LineBatch;
  const sizes: number[] = [];
  // SonicBoom looks fs.write up at each call, so every write to the file passes here.
  fs.write = function (this: unknown, ...args: unknown[]) {
    const data = args[1];
    if (Buffer.isBuffer(data) || typeof data === 'string') sizes.push(Buffer.byteLength(data as Buffer));
    return (originalWrite as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof fs.write;
  const line = `${JSON.stringify({ level: 'info', type: 'audit', path: `/p/${'a'.repeat(1000)}` })}\n`;
  const lines = 4096;
  for (let i = 0; i < lines; i++) dest.write(line);
  await new Promise<void>((resolve, reject) => dest.flush((err) => (err ? reject(err) : resolve())));
  dest.end();
  const total = line.length * lines;
  expect((await readFile(path)).length).toBe(total);
  expect(sizes.reduce((a, b) => a + b, 0)).toBe(total);
  // 64 writes of 64 KiB before; the first batch alone, then the rest in writes of up to 1 MiB.
  expect(sizes.length).toBeLessThanOrEqual(8);
  expect(Math.max(...sizes)).toBeGreaterThan(512 * 1024);
});
