/**
 * Which connections were verified under the client CA bundle now in service (SPEC §11). A changed
 * bundle ends the others, as an nginx reload does: idle ones at once, a busy one after its current
 * response (`Connection: close`), and any request read on one later is not served (the connection ends
 * after the response in flight, or at once; a keep-alive client retries on a new one). A connection accepted before the change and
 * handshaking after it was verified by the old context (node picks it at accept), so it is refused
 * once its handshake completes.
 *
 * Each bundle is a generation: a raw socket is stamped with the generation in service when it is
 * accepted, the secured socket inherits it (server-tls.ts maps one to the other), and only a
 * socket of the current generation is admitted.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';

const TRUST_ENDED = Symbol('jitgate.trustEnded');
const ANSWERING = Symbol('jitgate.answering');
const SOCKET = Symbol('jitgate.answeringSocket');

type TrustSocket = Socket & { [TRUST_ENDED]?: true; [ANSWERING]?: ServerResponse | undefined };
type TrackedResponse = ServerResponse & { [SOCKET]?: TrustSocket | undefined };

/**
 * One function for every response (`this`), not a closure per request. The socket is the one
 * recorded at admission: by `finish` node may already have detached it from the request (a
 * forwarded body), which crashed an earlier version of this reading `req.socket`.
 */
function answered(this: TrackedResponse): void {
  const s = this[SOCKET];
  this[SOCKET] = undefined;
  if (s !== undefined && s[ANSWERING] === this) s[ANSWERING] = undefined;
}

export class ClientTrust {
  readonly #server: HttpsServer;
  readonly #secured = new Set<TrustSocket>();
  #generation = 0;

  constructor(server: HttpsServer) {
    this.#server = server;
  }

  /** The generation of the bundle in service: what a socket accepted now is verified under. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * A handshake completed on a socket accepted under `acceptedGeneration`: false when the bundle
   * changed in between (the caller refuses the connection), else it is tracked until it closes.
   */
  secured(socket: Socket, acceptedGeneration: number | undefined): boolean {
    if (acceptedGeneration !== this.#generation) return false;
    const s = socket as TrustSocket;
    this.#secured.add(s);
    s.once('close', () => this.#secured.delete(s));
    return true;
  }

  /**
   * First thing for every request: false when its connection's trust has ended, and the request is
   * not served. Behind a response still being written (pipelined), it is left unanswered: that
   * response ends the connection (changed()). Otherwise the connection is destroyed now.
   */
  admit(req: IncomingMessage, res: ServerResponse): boolean {
    const s = req.socket as TrustSocket;
    if (s[TRUST_ENDED] === true) {
      const current = s[ANSWERING];
      if (current === undefined || current.writableFinished) s.destroy();
      return false;
    }
    s[ANSWERING] = res;
    (res as TrackedResponse)[SOCKET] = s;
    res.once('finish', answered);
    return true;
  }

  /** Whether `socket` was verified under a bundle that has since changed (its requests are not served). */
  ended(socket: Socket): boolean {
    return (socket as TrustSocket)[TRUST_ENDED] === true;
  }

  /** The bundle's bytes changed: a new generation; ends the old one's connections. Returns how many were busy. */
  changed(): number {
    this.#generation++;
    this.#server.closeIdleConnections();
    let busy = 0;
    for (const s of this.#secured) {
      if (s.destroyed) continue;
      busy++;
      s[TRUST_ENDED] = true;
      const res = s[ANSWERING];
      if (res === undefined || res.writableFinished) continue;
      if (!res.headersSent) res.shouldKeepAlive = false;
      else res.once('finish', () => s.end());
    }
    return busy;
  }
}
