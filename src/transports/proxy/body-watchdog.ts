/**
 * Request-body idle timeout (issue 21 item 8; nginx `client_body_timeout`, `limits.body_timeout`):
 * once undici is reading a request body upstream, a client socket that delivers no byte for the
 * timeout is a stalled upload holding an upstream connection. One timer per body, refreshed rather
 * than re-created, samples the socket's byte count every quarter of the timeout, so the cut lands
 * between 1× and 1.25× the setting. Requests without a body never start one.
 */
import type { IncomingMessage } from 'node:http';

/** Calls `onIdle` once the body stalls; stops by itself when the body is complete or `done()` says so. */
export function watchBody(req: IncomingMessage, timeoutMs: number, done: () => boolean, onIdle: () => void): NodeJS.Timeout {
  const socket = req.socket;
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
