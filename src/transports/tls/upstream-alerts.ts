/**
 * TLS alerts a backend sends after jitgate's side of the handshake is done (SPEC §11). In TLS 1.3
 * the client finishes first and the server checks the client certificate afterwards, so a backend
 * that refuses jitgate's certificate answers with an alert (certificate_required, unknown_ca,
 * bad_certificate) on a connection undici already holds: the socket emits the OpenSSL error, but
 * undici reports the request as UND_ERR_SOCKET "other side closed", which alone reads as a backend
 * that dropped the connection (upstream_unreachable) and would be retried.
 *
 * The upstream connector (upstream-tls.ts) watches each TLS socket it hands undici; a verification
 * error on it is noted under the connection's addresses, which undici's SocketError carries
 * (`err.socket`), for as long as the socket lives plus one turn of the event loop — undici fails
 * the request from the socket's 'close', synchronously. Only TLS upstreams pay: one listener per
 * connection, nothing per request.
 */
import type { Socket } from 'node:net';

const noted = new Map<string, string>();

interface Addresses {
  readonly localAddress?: string;
  readonly localPort?: number;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
}

const keyOf = (s: Addresses): string => `${s.localAddress}|${s.localPort}|${s.remoteAddress}|${s.remotePort}`;

/** Notes the TLS verification errors (`isTls(code)`) `socket` emits, for tlsAlertOf. */
export function watchTlsAlerts(socket: Socket, isTls: (code: string) => boolean): void {
  const key = keyOf(socket);
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (typeof err.code === 'string' && isTls(err.code)) noted.set(key, err.code);
  });
  socket.once('close', () => {
    if (noted.has(key)) setImmediate(() => noted.delete(key));
  });
}

/** The TLS error code noted on the connection an undici SocketError names, if any. */
export function tlsAlertOf(err: Error): string | undefined {
  if (noted.size === 0) return undefined;
  const info = (err as { socket?: Addresses }).socket;
  return info === undefined ? undefined : noted.get(keyOf(info));
}
