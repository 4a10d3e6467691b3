/**
 * boundedGet's conditional requests (src/net/bounded-get.ts), which the status lists, the revocation
 * feed and the JWKS fetcher share: a 304 is believed only as the answer to a request that named a
 * version (If-None-Match); an empty or blank ETag names none and is never sent back. A probe kept a
 * status list fresh past max_stale with bare 304s after a copy served without an ETag, then with an
 * empty one; the other two sources had the same hole.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boundedGet, FetchError } from '../../src/net/bounded-get.ts';

let server: Server;
let url: string;
/** What the next answer is, and the If-None-Match each request carried. */
let answer: { status: number; etag?: string } = { status: 200 };
const seen: (string | undefined)[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(req.headers['if-none-match']);
    if (answer.etag !== undefined) res.setHeader('etag', answer.etag);
    res.writeHead(answer.status).end(answer.status === 200 ? 'body' : undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/list`;
});
afterAll(() => new Promise((r) => server.close(r)));

const get = (etag?: string) => boundedGet(url, { timeoutMs: 2_000, maxBytes: 1_000, etag });

describe('boundedGet and 304', () => {
  it('a 304 to a request that named a version is "not modified"', async () => {
    answer = { status: 304, etag: '"v1"' };
    expect(await get('"v1"')).toMatchObject({ status: 'not_modified', etag: '"v1"' });
    expect(seen.at(-1)).toBe('"v1"');
  });

  it.each([
    ['no ETag held', undefined],
    ['an empty ETag held', ''],
    ['a blank ETag held', '  '],
  ])('%s: no If-None-Match is sent, and a 304 is a failure (not a redirect), never a confirmation', async (_name, etag) => {
    answer = { status: 304 };
    const err = await get(etag).then(() => undefined, (e: unknown) => e);
    expect(seen.at(-1)).toBeUndefined();
    expect(err).toBeInstanceOf(FetchError);
    expect(err).toMatchObject({ code: 'http_status', httpStatus: undefined, message: 'HTTP 304 to a request without If-None-Match' });
  });

  it('an empty or blank ETag on a 200 is reported as none', async () => {
    for (const etag of ['', '   ']) {
      answer = { status: 200, etag };
      expect(await get()).toMatchObject({ status: 'ok', etag: undefined });
    }
    answer = { status: 200, etag: 'W/"x"' };
    expect(await get()).toMatchObject({ status: 'ok', etag: 'W/"x"' });
  });
});
