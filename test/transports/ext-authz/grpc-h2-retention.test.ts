/**
 * What an answered unary call leaves reachable from its stream. node:http2 keeps a finished stream
 * (and its listeners) alive until an old-generation collection, so anything the listeners still
 * hold is copied and promoted by every young-generation collection in between: with 50 Checks in
 * flight those copies were the gRPC p99 (bench/README.md, "gRPC p99"). The call's request headers
 * and message must be collectable as soon as the answer is given, while the stream itself lives.
 */
import { connect } from 'node:http2';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { frame } from '../../../src/transports/ext-authz/grpc-h2/frames.ts';
import { GrpcH2Server, type UnaryReply, type UnaryRoute } from '../../../src/transports/ext-authz/grpc-h2/server.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const server = new GrpcH2Server({ maxMessageBytes: 1 << 20 });
let port = 0;
/** Strong: the reply holds the stream, and the stream its listeners. */
const replies: UnaryReply[] = [];
const headersSeen: WeakRef<object>[] = [];
const messagesSeen: WeakRef<object>[] = [];

/** A route that records what it was given and answers through `answer`. */
function recording(answer: (reply: UnaryReply) => void): UnaryRoute {
  return {
    kind: 'unary',
    handle(message, reply, headers) {
      replies.push(reply);
      headersSeen.push(new WeakRef(headers));
      if (typeof message !== 'string') messagesSeen.push(new WeakRef(message));
      answer(reply);
    },
  };
}

beforeAll(async () => {
  const ok = (reply: UnaryReply): void => void reply.ok(Buffer.from([0x08, 0x01]));
  server.route('/t.Retention/Sync', recording(ok));
  // A Check that waits for a signature check answers a turn later.
  server.route('/t.Retention/Later', recording((reply) => setImmediate(() => ok(reply))));
  port = await server.listen('127.0.0.1', 0);
});
afterAll(() => server.close(1000));

function call(method: 'Sync' | 'Later'): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    const req = session.request({ ':method': 'POST', ':path': `/t.Retention/${method}`, 'content-type': 'application/grpc', te: 'trailers' });
    let status = -1;
    req.on('trailers', (t) => (status = Number(t['grpc-status'])));
    req.on('data', () => {});
    req.on('end', () => {
      session.close();
      resolve(status);
    });
    req.on('error', reject);
    req.end(frame(Buffer.alloc(600, 0x41)));
  });
}

it('an answered call lets go of its headers and message while its stream is still alive, answered at once or later', async () => {
  for (let i = 0; i < 5; i++) expect(await call(i % 2 === 0 ? 'Sync' : 'Later')).toBe(0);
  await new Promise((r) => setImmediate(r));
  gc();
  gc();
  expect(replies).toHaveLength(5);
  expect(messagesSeen).toHaveLength(5);
  expect(headersSeen.filter((w) => w.deref() !== undefined)).toHaveLength(0);
  expect(messagesSeen.filter((w) => w.deref() !== undefined)).toHaveLength(0);
});
