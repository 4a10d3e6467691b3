/**
 * One request at a time per client connection (issue 21 item 9). node:http parses every pipelined
 * request in a chunk at once and emits each; forwarded together, their answers wait in memory
 * behind the first (a client that writes 20,000 GETs and never reads took RSS past 1 GB). As
 * nginx does, request n+1 is forwarded only once answer n has been handed to the socket; while
 * one waits, the socket is paused so no more is read, and the kernel's window stops the client.
 *
 * node:http already keeps that order for the answers: a response made while an earlier one is still
 * being written gets no socket (`res.socket` is null) until node has finished the earlier one and
 * hands it the socket (its `'socket'` event, from `assignSocket`). So a request whose response has
 * the socket is the connection's only one and is handled at once, with no bookkeeping at all — the
 * common case, a keep-alive client that waits for each answer. Only a pipelined request waits here,
 * for its `'socket'` event, and only a connection with waiting requests has an entry. (Before, every
 * request paid a per-socket WeakMap lookup and a `'close'` listener for this.)
 *
 * At most `limits.max_inflight_per_connection` requests per connection (active one included);
 * beyond that the request is answered 429 inflight_limit with `Connection: close`, so what waits
 * cannot grow without bound either. test/transports/proxy/fault-limits.test.ts holds both, and
 * test/transports/proxy/connection-lane.test.ts the node:http behaviour this relies on.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

interface Waiting {
  /** Requests of this connection parsed but not yet handed the socket. */
  count: number;
  paused: boolean;
}

export type Refuse = (req: IncomingMessage, res: ServerResponse) => void;
export type Handle = (req: IncomingMessage, res: ServerResponse, expectContinue: boolean) => void;

export class ConnectionLanes {
  readonly #waiting = new WeakMap<Socket, Waiting>();
  readonly #max: number;
  readonly #handle: Handle;
  readonly #refuse: Refuse;

  /** `refuse` answers a request over the cap (after the earlier answers, in order). */
  constructor(maxInflight: number, handle: Handle, refuse: Refuse) {
    this.#max = maxInflight;
    this.#handle = handle;
    this.#refuse = refuse;
  }

  /** Handles the request now if the connection is idle, else once the answers before it are flushed. */
  admit(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    if (res.socket !== null) {
      this.#handle(req, res, expectContinue);
      return;
    }
    const socket = req.socket;
    let w = this.#waiting.get(socket);
    if (w === undefined) {
      w = { count: 0, paused: false };
      this.#waiting.set(socket, w);
    }
    if (1 + w.count >= this.#max) {
      res.shouldKeepAlive = false;
      this.#refuse(req, res);
      return;
    }
    w.count++;
    const waiting = w;
    res.once('socket', () => {
      // The last one waiting: read on once its answer has gone too, as while it waited.
      if (--waiting.count === 0) {
        res.once('close', () => {
          waiting.paused = false;
          socket.resume();
        });
      }
      this.#handle(req, res, expectContinue);
    });
    if (!w.paused) {
      w.paused = true;
      socket.pause();
    }
  }
}
