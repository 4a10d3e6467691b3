/**
 * A listener's TLS (SPEC §11): node:https over the same node:http options, TLS 1.2 or later,
 * client certificates requested and verified against `client_ca_file` when it is set.
 *
 * - `require_client_cert: true` → `rejectUnauthorized`: a handshake without a certificate that
 *   chains to the bundle (missing, untrusted, expired, not yet valid) fails, and no request is ever
 *   read from that connection, so it never reaches a decision.
 * - `require_client_cert: false` → the certificate is requested but optional; one that does not
 *   verify leaves `socket.authorized` false and counts as no certificate (client-cert.ts).
 * - A CA certificate (cA=true) verifies but is no client identity (client-cert.ts): with
 *   `require_client_cert: true` its connection is closed after the handshake, before any request.
 * - Rotation without restart (SPIFFE SVIDs rotate hourly): the three files are polled
 *   (file-reload.ts) and, on a change, a new secure context is swapped in with setSecureContext.
 *   New handshakes use it. A pair that does not load (the key written before the cert, say) keeps
 *   the old context until the next change. The session-ticket keys are carried over while the client
 *   CA bundle is unchanged, so clients resume their sessions across a rotation of the server's
 *   certificate; a changed bundle ends every session.
 * - A changed client CA bundle also ends the connections verified under the old one, as an nginx
 *   reload does (client-trust.ts): idle ones at once, busy ones after their current response
 *   (`Connection: close`); a request read on one later is not served, and a connection accepted
 *   before the change whose handshake completes after it is refused. Their clients handshake again,
 *   against the new bundle, so a CA removed from it stops being trusted on connections that were
 *   open when it was removed, not only on new ones.
 * - Sessions resume for at most 5 minutes (SESSION_TIMEOUT_S), and a resumed session whose
 *   certificate is now outside its validity window is refused like a failed handshake.
 * - Ciphers are Node's defaults (forward-secret AEAD suites first); server order is honoured.
 * - A handshake gets as long as a request head (`headersTimeout`: limits.headers_timeout, 10 s by
 *   default), not node's 120 s. Every failed handshake — the timeout included — destroys its socket:
 *   node does that itself for OpenSSL errors, but not for ERR_TLS_HANDSHAKE_TIMEOUT once node:https
 *   hands it to a `clientError` listener (the proxy has one), which left the socket open, the drain
 *   waiting on it, and a late handshake still served.
 * - Drain: connections still in their handshake have sent no request, like idle keep-alive ones, and
 *   are ended when the listener closes (node:http's connection list only knows secured ones).
 * - No renegotiation (TLS 1.2; 1.3 has none). Node lets a client renegotiate 3 times per 10 minutes
 *   on each connection: a full handshake's CPU on the gate's event loop for every request, that no
 *   client needs (HAProxy and nginx refuse client-initiated renegotiation too). An attempt closes the
 *   connection, counted as a failed handshake.
 */
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { IncomingMessage, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { SecureContextOptions, TLSSocket, TlsOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { ServerTlsConfig } from '../../config/tls-schema.ts';
import { outsideValidity } from '../../core/cert-binding.ts';
import { StartupError } from '../../errors.ts';
import { notRegularFile } from '../../file-version.ts';
import type { TlsMetrics } from '../../observability/metrics.ts';
import type { ProblemBoard } from '../../observability/problem-board.ts';
import { caBundleProblem } from './ca-bundle.ts';
import { clientCertOf, validityMs } from './client-cert.ts';
import { ClientTrust } from './client-trust.ts';
import { reloadOnChange, RetryLater } from './file-reload.ts';

/**
 * Reads the files of a TLS block into context options; throws naming `key` (e.g. `listen.tls`),
 * also for a client CA file that holds no certificate (ca-bundle.ts).
 */
export function secureContextOptions(tls: ServerTlsConfig, key: string): SecureContextOptions {
  const read = (field: 'cert_file' | 'key_file' | 'client_ca_file', path: string): Buffer => {
    try {
      // A named pipe in a file's place would hold this synchronous read, and the event loop, until written.
      if (!statSync(path).isFile()) throw notRegularFile();
      return readFileSync(path);
    } catch (err) {
      throw new StartupError(`${key}.${field}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
  };
  const opts: SecureContextOptions = { cert: read('cert_file', tls.cert_file), key: read('key_file', tls.key_file), minVersion: 'TLSv1.2', honorCipherOrder: true };
  if (tls.client_ca_file !== undefined) {
    const ca = read('client_ca_file', tls.client_ca_file);
    const problem = caBundleProblem(ca);
    if (problem !== undefined) throw new StartupError(`${key}.client_ca_file: ${tls.client_ca_file} ${problem}`);
    opts.ca = ca;
  }
  return opts;
}

/**
 * Why the certificate (the first one of a PEM chain) is outside its validity window now, or undefined.
 * A replacement that is (an expired file copied over a good one) is not put in service while the
 * current one is valid: every new handshake would fail while open connections carry on, so the
 * breakage shows only as clients reconnect (a re-probe saw it logged as a successful reload).
 */
export function certificateWindowProblem(cert: Buffer | string | undefined, nowMs: number): string | undefined {
  if (cert === undefined) return undefined;
  let x: X509Certificate;
  try {
    x = new X509Certificate(cert as Buffer);
  } catch {
    return undefined; // createSecureContext names what does not parse
  }
  const { fromMs, toMs } = validityMs(x);
  if (nowMs > toMs) return `the certificate expired at ${new Date(toMs).toISOString()}`;
  if (nowMs < fromMs) return `the certificate is not valid before ${new Date(fromMs).toISOString()}`;
  return undefined;
}

/** When the listener has no headers timeout to borrow: limits.headers_timeout's default (node's is 120 s). */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Seconds a TLS session stays resumable (nginx's `ssl_session_timeout` default; OpenSSL's own is
 * 7,200). A resumed session skips certificate verification and keeps the certificate of the
 * handshake that made it, so this bounds how long a session outlives that check; each request also
 * checks the certificate's validity window itself (core/cert-binding.ts).
 */
export const SESSION_TIMEOUT_S = 300;

/**
 * What a session resumes under: the client CA bundle. A session (ID or ticket) made under one
 * bundle does not resume under another, so removing a CA from the bundle ends its certificates'
 * sessions too (Envoy mixes its CA digest into the session context the same way). With the bundle
 * unchanged, the ticket keys carry over a rotation of the server's own certificate.
 */
function sessionOptions(ctx: SecureContextOptions, ticketKeys?: Buffer): Pick<TlsOptions, 'sessionTimeout' | 'sessionIdContext' | 'ticketKeys'> {
  const trust = createHash('sha256').update(ctx.ca === undefined ? '' : (ctx.ca as Buffer)).digest('hex').slice(0, 32);
  return { sessionTimeout: SESSION_TIMEOUT_S, sessionIdContext: trust, ...(ticketKeys === undefined ? {} : { ticketKeys }) };
}

function serverTlsOptions(tls: ServerTlsConfig, ctx: SecureContextOptions, handshakeTimeout: number): TlsOptions {
  return {
    ...ctx,
    ...sessionOptions(ctx),
    handshakeTimeout,
    requestCert: tls.client_ca_file !== undefined,
    rejectUnauthorized: tls.require_client_cert,
  };
}

export interface TlsServer {
  readonly server: HttpsServer;
  /**
   * Called by the listener first for each request: false when the connection was verified under a
   * client CA bundle that has since changed (it is destroyed; the request is not served).
   */
  admit(req: IncomingMessage, res: ServerResponse): boolean;
  /** Whether the request's connection was verified under a client CA bundle that has since changed. */
  trustEnded(req: IncomingMessage): boolean;
  /**
   * Stops the file polling and ends the connections still in their handshake; the server itself
   * (and its secured connections) is closed by its listener, which calls this first.
   */
  stop(): void;
}

/**
 * An https server with the node:http options of a plain one (`httpOptions`), reloading its files
 * on change. `name` labels the metrics and logs (`proxy`, `admin`); `key` names the config block.
 */
export function createTlsServer(httpOptions: ServerOptions, tls: ServerTlsConfig, ctx: { name: string; key: string; metrics?: TlsMetrics; logger: Logger; problems?: ProblemBoard }): TlsServer {
  const { name, key, metrics, logger, problems } = ctx;
  let server: HttpsServer;
  const handshakeTimeout = httpOptions.headersTimeout !== undefined && httpOptions.headersTimeout > 0 ? httpOptions.headersTimeout : HANDSHAKE_TIMEOUT_MS;
  let current = secureContextOptions(tls, key);
  // Served all the same (as nginx and Envoy do: it may be what there is), but said at start.
  const startWindow = certificateWindowProblem(current.cert as Buffer, Date.now());
  if (startWindow !== undefined) logger.warn({ listener: name }, `${key}.cert_file: ${startWindow}; clients that check it will refuse the handshake`);
  try {
    server = createHttpsServer({ ...httpOptions, ...serverTlsOptions(tls, current, handshakeTimeout) });
  } catch (err) {
    if (err instanceof StartupError) throw err;
    throw new StartupError(`${key}: the certificate and key do not load: ${(err as Error).message}`, { cause: err });
  }
  const failures = metrics?.tlsHandshakeFailures.labels(name);
  /** A connection that never carries a request: destroyed, counted, logged at debug (scanners are noisy). */
  const refuse = (socket: Socket, err: string, code: string | undefined, msg: string): void => {
    socket.destroy();
    failures?.inc();
    // The certificate verification's own reason (CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE…):
    // node reports a refused client certificate as "socket hang up", and keeps the reason on the socket.
    const verify = (socket as TLSSocket).authorizationError;
    if (logger.isLevelEnabled('debug')) logger.debug({ listener: name, err, code, ...(verify === undefined || verify === null ? {} : { verify: String((verify as Error).message ?? verify) }) }, msg);
  };
  // Prepended: node:https's own listener passes the error on to `clientError`, which must find the
  // socket already gone rather than answer in plain text.
  server.prependListener('tlsClientError', (err: NodeJS.ErrnoException, socket: Socket) => refuse(socket, err.message, err.code, 'TLS handshake failed'));

  // Node emits a refused renegotiation as a socket error, which node:https would hand to
  // `clientError` to be answered in plain HTTP; a connection in the middle of a handshake gets no
  // answer, only closed. One function for every socket (`this`), not a closure per connection.
  const onSocketError = function (this: TLSSocket, err: NodeJS.ErrnoException): void {
    if (err.code === 'ERR_TLS_RENEGOTIATION_DISABLED') refuse(this, err.message, err.code, 'TLS renegotiation refused');
  };
  // Runs before node:http's listener, so a connection cut here never has a request read.
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    // A client certificate whose signature does not verify (CERT_SIGNATURE_FAILURE), accepted here
    // as no certificate where one is optional, leaves OpenSSL's error on the thread's queue; node's
    // next TLS read that waits for data takes it for its own failure (ERR_SSL_PROVIDER_SIGNATURE_FAILURE):
    // the connection's next request got a raw 400, or none and a connection no timer closed (the
    // thirteenth round). Reading the peer certificate clears the queue (node's ClearErrorOnReturn).
    if (socket.authorizationError != null) socket.getPeerX509Certificate();
    socket.disableRenegotiation();
    socket.prependListener('error', onSocketError);
    // require_client_cert promises that no request is read from a connection without a client
    // identity; the handshake accepts a CA certificate (cA=true), which is none (client-cert.ts),
    // and a resumed session keeps a certificate that may have expired since (nothing re-checks it).
    if (tls.require_client_cert) {
      const cert = clientCertOf(socket);
      if (cert === undefined) refuse(socket, 'the client certificate is a CA certificate', undefined, 'TLS handshake failed');
      else {
        const invalid = outsideValidity(cert, Date.now());
        if (invalid !== undefined) refuse(socket, `resumed session: ${invalid.replaceAll('_', ' ')}`, undefined, 'TLS handshake failed');
      }
    }
  });
  // Only a listener that verifies client certificates has a trust to change (client_ca_file).
  const trust = tls.client_ca_file === undefined ? undefined : new ClientTrust(server);
  const handshakes = trackHandshakes(server, () => trust?.generation ?? 0, (socket, generation) => {
    if (trust !== undefined && !trust.secured(socket, generation)) {
      refuse(socket, 'verified under a client CA bundle that changed during the handshake', undefined, 'TLS handshake failed');
    }
  });
  const stopReload = reloadOnChange({
    files: [tls.cert_file, tls.key_file, ...(tls.client_ca_file === undefined ? [] : [tls.client_ca_file])],
    intervalMs: tls.reload_interval,
    name,
    metrics,
    logger,
    problems,
    apply: () => {
      const next = secureContextOptions(tls, key);
      const now = Date.now();
      const window = certificateWindowProblem(next.cert as Buffer, now);
      if (window !== undefined && certificateWindowProblem(current.cert as Buffer, now) === undefined) {
        throw new RetryLater(`${key}.cert_file: ${window}; keeping the current certificate, which is valid`);
      }
      // Fresh ticket keys when the trusted CAs changed: tickets issued under the old bundle must not
      // resume (server.ticketKeys would otherwise keep the last ones passed in).
      const sameTrust = current.ca === next.ca || (Buffer.isBuffer(current.ca) && Buffer.isBuffer(next.ca) && current.ca.equals(next.ca));
      try {
        server.setSecureContext({ ...next, ...sessionOptions(next, sameTrust ? server.getTicketKeys() : randomBytes(48)) });
      } catch (err) {
        // OpenSSL's words alone ("key values mismatch") name no file: the log and /readyz say which block.
        throw new Error(`${key}: the certificate and key do not load: ${(err as Error).message}`, { cause: err });
      }
      current = next;
      if (!sameTrust && trust !== undefined) {
        const busy = trust.changed();
        logger.info({ listener: name, busy }, 'client CA bundle changed: connections verified under the old one are closed (idle ones now, busy ones after their response)');
      }
    },
  });
  /** Before the listener's own handling of every request (request, checkContinue, checkExpectation). */
  const admit = (req: IncomingMessage, res: ServerResponse): boolean => trust === undefined || trust.admit(req, res);
  return {
    server,
    admit,
    trustEnded: (req: IncomingMessage): boolean => trust !== undefined && trust.ended(req.socket),
    stop: () => {
      stopReload();
      for (const raw of handshakes.values()) raw.destroy();
    },
  };
}

/**
 * The TCP sockets whose handshake has not completed, by connection 4-tuple: the secured TLS socket
 * shares its TCP socket's addresses, which is how it leaves the map (public API only; the TLS
 * socket's link to its TCP socket is internal). Destroying the TCP socket destroys the TLS one.
 * Each is stamped with the client-trust generation in service when it was accepted (node picks the
 * secure context then), which `onSecured` receives with the secured socket, before node:https.
 */
function trackHandshakes(server: HttpsServer, generation: () => number, onSecured: (socket: Socket, acceptedGeneration: number | undefined) => void): Map<string, Socket> {
  const open = new Map<string, Socket>();
  const acceptedAt = new Map<string, number>();
  const tuple = (s: Socket): string => `${s.remoteAddress}|${s.remotePort}|${s.localAddress}|${s.localPort}`;
  server.on('connection', (raw: Socket) => {
    const k = tuple(raw);
    open.set(k, raw);
    acceptedAt.set(k, generation());
    raw.once('close', () => {
      if (open.get(k) === raw) {
        open.delete(k);
        acceptedAt.delete(k);
      }
    });
  });
  server.prependListener('secureConnection', (s: Socket) => {
    const k = tuple(s);
    const accepted = acceptedAt.get(k);
    open.delete(k);
    acceptedAt.delete(k);
    onSecured(s, accepted);
  });
  return open;
}
