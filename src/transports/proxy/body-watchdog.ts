/**
 * Request-body idle timeout (issue 21 item 8; nginx `client_body_timeout`, `limits.body_timeout`):
 * once undici is reading a request body upstream, a client socket that delivers no byte for the
 * timeout is a stalled upload holding an upstream connection. One timer per body, refreshed rather
 * than re-created, samples the socket's byte count every quarter of the timeout, so the cut lands
 * between 1× and 1.25× the setting. Requests without a body never start one.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { answeredBodies } from '../client-error.ts';

/** Calls `onIdle` once the body stalls; stops by itself when the body is complete or `done()` says so. */
export function watchBody(req: IncomingMessage, socket: Socket, timeoutMs: number, done: () => boolean, onIdle: () => void): NodeJS.Timeout {
  let last = socket.bytesRead;
  let lastAt = performance.now();
  const timer: NodeJS.Timeout = setTimeout(
    () => {
      if (done() || req.complete) return;
      const now = performance.now();
      if (socket.bytesRead !== last) {
        last = socket.bytesRead;
        lastAt = now;
      } else if (now - lastAt >= timeoutMs) {
        onIdle();
        return;
      }
      timer.refresh();
    },
    Math.max(25, Math.floor(timeoutMs / 4)),
  );
  return timer;
}

/** How long the rest of a body is read and dropped after its answer (nginx's `lingering_time`). */
const DROP_FOR_MS = 30_000;

/**
 * The backend answered before the request body was all sent (a 413, or a 200 that did not read it).
 * undici then destroys the request stream it was reading (detached from its socket), so node's parser,
 * pushing the rest of the body into it, stops reading the connection: the client's upload blocked, a
 * pipelined request was never answered, and the keep-alive timeout reset the socket — which can
 * destroy the answer before the client reads it (a probe). Here the rest is dropped as node drops a
 * body nobody reads (`_dump`: the parser discards body bytes and goes on to the next request), as
 * nginx discards a body it will not use; a body that stalls for `idleMs`, or is still coming after
 * 30 s, closes the connection instead.
 */
export function dropRestOfBody(req: IncomingMessage, socket: Socket, idleMs: number): void {
  if (req.complete || socket.destroyed) return;
  const dump = (req as { _dump?: () => void })._dump;
  if (typeof dump !== 'function') {
    socket.destroy(); // a node without it: closing is the only way left not to wedge the connection
    return;
  }
  dump.call(req);
  answeredBodies.set(socket, req);
  socket.resume(); // the parser paused the socket when the destroyed stream took no more
  const close = () => {
    if (!req.complete) socket.destroy();
  };
  // Both timers end by themselves (a finished body makes `close` a no-op); no listener on a socket
  // that may see many such answers.
  watchBody(req, socket, idleMs, () => socket.destroyed, close).unref();
  setTimeout(close, DROP_FOR_MS).unref();
}
