/**
 * One request at a time per client connection (issue 21 item 9). node:http parses every pipelined
 * request in a chunk at once and emits each; forwarded together, their answers wait in memory
 * behind the first (a client that writes 20,000 GETs and never reads took RSS past 1 GB). As
 * nginx does, request n+1 is forwarded only once answer n has been handed to the socket; while
 * one waits, the socket is paused so no more is read, and the kernel's window stops the client.
 *
 * What was already parsed from the chunk waits here, at most `limits.max_inflight_per_connection`
 * per connection (active one included); beyond that the request is answered 429 inflight_limit
 * with `Connection: close`, so the lane cannot grow without bound either.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

interface Lane {
  busy: boolean;
  paused: boolean;
  readonly queue: Array<() => void>;
  /** The one 'close' listener of this connection's answers, made once per connection, not per request. */
  readonly next: () => void;
}

export type Refuse = (req: IncomingMessage, res: ServerResponse) => void;
export type Handle = (req: IncomingMessage, res: ServerResponse, expectContinue: boolean) => void;

export class ConnectionLanes {
  readonly #lanes = new WeakMap<Socket, Lane>();
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
    const socket = req.socket;
    let lane = this.#lanes.get(socket);
    if (lane === undefined) {
      const made: Lane = { busy: false, paused: false, queue: [], next: () => this.#next(made, socket) };
      lane = made;
      this.#lanes.set(socket, lane);
    }
    if (!lane.busy) {
      lane.busy = true;
      // 'on', not 'once': a ServerResponse emits 'close' once and is then dropped, and `once` wraps
      // the listener in two new objects per request.
      res.on('close', lane.next);
      this.#handle(req, res, expectContinue);
      return;
    }
    if (1 + lane.queue.length >= this.#max) {
      res.shouldKeepAlive = false;
      this.#refuse(req, res);
      return;
    }
    const queued = lane;
    queued.queue.push(() => {
      res.on('close', queued.next);
      this.#handle(req, res, expectContinue);
    });
    if (!lane.paused) {
      lane.paused = true;
      socket.pause();
    }
  }

  #next(lane: Lane, socket: Socket): void {
    lane.busy = false;
    if (socket.destroyed) {
      // Nobody is left to answer: drop what was parsed rather than forward it.
      lane.queue.length = 0;
      return;
    }
    const next = lane.queue.shift();
    if (next !== undefined) {
      lane.busy = true;
      next();
      return;
    }
    if (lane.paused) {
      lane.paused = false;
      socket.resume();
    }
  }
}
