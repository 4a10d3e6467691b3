/**
 * A listener's TLS (SPEC §11): node:https over the same node:http options, TLS 1.2 or later,
 * client certificates requested and verified against `client_ca_file` when it is set.
 *
 * - `require_client_cert: true` → `rejectUnauthorized`: a handshake without a certificate that
 *   chains to the bundle (missing, untrusted, expired, not yet valid) fails, and no request is ever
 *   read from that connection, so it never reaches a decision.
 * - `require_client_cert: false` → the certificate is requested but optional; one that does not
 *   verify leaves `socket.authorized` false and counts as no certificate (client-cert.ts).
 * - Rotation without restart (SPIFFE SVIDs rotate hourly): the three files are polled
 *   (file-reload.ts) and, on a change, a new secure context is swapped in with setSecureContext.
 *   New handshakes use it; established connections keep theirs. A pair that does not load (the
 *   key written before the cert, say) keeps the old context until the next change. The
 *   session-ticket keys are carried over, so clients resume their sessions across a rotation.
 * - Ciphers are Node's defaults (forward-secret AEAD suites first); server order is honoured.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { ServerOptions } from 'node:http';
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { ServerTlsConfig } from '../../config/tls-schema.ts';
import { StartupError } from '../../errors.ts';
import type { Metrics } from '../../observability/metrics.ts';
import { reloadOnChange } from './file-reload.ts';

/** Reads the files of a TLS block into context options; throws naming `key` (e.g. `listen.tls`). */
export function secureContextOptions(tls: ServerTlsConfig, key: string): SecureContextOptions {
  const read = (field: 'cert_file' | 'key_file' | 'client_ca_file', path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new StartupError(`${key}.${field}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
  };
  const opts: SecureContextOptions = { cert: read('cert_file', tls.cert_file), key: read('key_file', tls.key_file), minVersion: 'TLSv1.2', honorCipherOrder: true };
  if (tls.client_ca_file !== undefined) opts.ca = read('client_ca_file', tls.client_ca_file);
  return opts;
}

function serverTlsOptions(tls: ServerTlsConfig, key: string): TlsOptions {
  return {
    ...secureContextOptions(tls, key),
    requestCert: tls.client_ca_file !== undefined,
    rejectUnauthorized: tls.require_client_cert,
  };
}

export interface TlsServer {
  readonly server: HttpsServer;
  /** Stops the file polling; the server itself is closed by its listener. */
  stop(): void;
}

/**
 * An https server with the node:http options of a plain one (`httpOptions`), reloading its files
 * on change. `name` labels the metrics and logs (`proxy`, `admin`); `key` names the config block.
 */
export function createTlsServer(httpOptions: ServerOptions, tls: ServerTlsConfig, ctx: { name: string; key: string; metrics?: Metrics; logger: Logger }): TlsServer {
  const { name, key, metrics, logger } = ctx;
  let server: HttpsServer;
  try {
    server = createHttpsServer({ ...httpOptions, ...serverTlsOptions(tls, key) });
  } catch (err) {
    if (err instanceof StartupError) throw err;
    throw new StartupError(`${key}: the certificate and key do not load: ${(err as Error).message}`, { cause: err });
  }
  const failures = metrics?.tlsHandshakeFailures.labels(name);
  // A failed handshake never becomes a request; it is counted, and logged at debug (scanners are noisy).
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => {
    failures?.inc();
    if (logger.isLevelEnabled('debug')) logger.debug({ listener: name, err: err.message, code: err.code }, 'TLS handshake failed');
  });

  const stop = reloadOnChange({
    files: [tls.cert_file, tls.key_file, ...(tls.client_ca_file === undefined ? [] : [tls.client_ca_file])],
    intervalMs: tls.reload_interval,
    name,
    metrics,
    logger,
    apply: () => server.setSecureContext({ ...secureContextOptions(tls, key), ticketKeys: server.getTicketKeys() }),
  });
  return { server, stop };
}
