/**
 * TLS to the backend (SPEC §11, `upstream.url: https://…` with `upstream.tls`): the options of
 * undici's connector. The backend's certificate is always verified — against `ca_file` when set,
 * else Node's built-in roots — and its name checked (against `servername` when set); a failure is a
 * 502, never a retry in plain text. `cert_file`/`key_file` make it mutual TLS.
 *
 * The three files are reloaded on change as the listener's are (file-reload.ts): jitgate's client
 * certificate for the backend may be an SVID that rotates hourly. A change builds a new connector,
 * so new connections present the new certificate and resume no session made with the old one, and
 * `onChange` lets the Forwarder retire its pooled connections: under steady traffic they never went
 * idle, so a CA withdrawn from `ca_file` stayed trusted on them for as long as the load lasted (a
 * black-box probe: 106,570 requests in 60 s over two connections of the removed CA). A set of files
 * that does not load — a CA file without a certificate included (ca-bundle.ts) — keeps the
 * previous connector.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import { buildConnector } from 'undici';
import type { Config } from '../../config/schema.ts';
import { StartupError } from '../../errors.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { ProblemBoard } from '../../observability/problem-board.ts';
import { caBundleProblem } from './ca-bundle.ts';
import { reloadOnChange } from './file-reload.ts';
import { watchTlsAlerts } from './upstream-alerts.ts';

/** OpenSSL/Node verification failures: the backend answered, but is not who it must be. */
export const TLS_ERROR_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REVOKED',
  'INVALID_CA',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  // What a TLS 1.2 backend answers when jitgate's certificate is missing or refused (OpenSSL 3's spelling, then 1.1's).
  'ERR_SSL_SSL/TLS_ALERT_HANDSHAKE_FAILURE',
  'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
  'ERR_SSL_SSL/TLS_ALERT_CERTIFICATE_UNKNOWN',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED',
  'ERR_SSL_SSL/TLS_ALERT_BAD_CERTIFICATE',
]);

/** undici `connect` options for the upstream Pool; undefined for a plain http:// upstream. */
export function upstreamConnectOptions(config: Config): buildConnector.BuildOptions | undefined {
  const u = config.upstream;
  const https = new URL(u.url).protocol === 'https:';
  const tls = u.tls;
  if (!https) {
    if (tls !== undefined) throw new StartupError(`upstream.tls: is only used with an https:// upstream.url, got ${JSON.stringify(u.url)}`);
    return undefined;
  }
  const read = (field: string, path: string | undefined): Buffer | undefined => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new StartupError(`upstream.tls.${field}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
  };
  const opts: buildConnector.BuildOptions = { rejectUnauthorized: true, minVersion: 'TLSv1.2' };
  const ca = read('ca_file', tls?.ca_file);
  const problem = ca === undefined ? undefined : caBundleProblem(ca);
  if (problem !== undefined) throw new StartupError(`upstream.tls.ca_file: ${tls!.ca_file!} ${problem}`);
  const cert = read('cert_file', tls?.cert_file);
  const key = read('key_file', tls?.key_file);
  if (ca !== undefined) opts.ca = ca;
  if (cert !== undefined) opts.cert = cert;
  if (key !== undefined) opts.key = key;
  if (tls?.servername !== undefined) opts.servername = tls.servername;
  return opts;
}

/**
 * upstreamConnectOptions with the CA bundle and the certificate/key pair loaded into a secure
 * context once, so that a pair that does not match fails here, naming `upstream.tls`.
 */
export function checkedUpstreamOptions(config: Config): buildConnector.BuildOptions | undefined {
  const opts = upstreamConnectOptions(config);
  if (opts === undefined) return undefined;
  const { ca, cert, key } = opts as SecureContextOptions;
  try {
    if (ca !== undefined || cert !== undefined) createSecureContext({ ca, cert, key });
  } catch (err) {
    throw new StartupError(`upstream.tls: the certificate and key do not load: ${(err as Error).message}`, { cause: err });
  }
  return opts;
}

export interface UpstreamConnector {
  /** The Pool's `connect`; undefined for a plain http:// upstream (undici's default connector). */
  readonly connect: buildConnector.connector | undefined;
  /** Stops watching the files. */
  stop(): void;
}

/**
 * The upstream Pool's connector: verified TLS per `upstream.tls`, rebuilt when its files change.
 * `connect_timeout` is applied here, since undici applies the Pool's only to a connector it builds.
 */
export function upstreamConnector(
  config: Config,
  ctx: { readonly metrics?: Metrics; readonly logger: Logger; readonly problems?: ProblemBoard; readonly onChange?: () => void },
): UpstreamConnector {
  // Checked before it replaces a working connector: undici would find out only at the next handshake.
  const build = (): buildConnector.connector => buildConnector({ ...checkedUpstreamOptions(config)!, timeout: config.upstream.connect_timeout });
  if (upstreamConnectOptions(config) === undefined) return { connect: undefined, stop: () => undefined };
  let current = build();
  const tls = config.upstream.tls;
  const files = [tls?.ca_file, tls?.cert_file, tls?.key_file].filter((f): f is string => f !== undefined);
  const name = upstreamServerName(config);
  if (tls === undefined || files.length === 0) return { connect: watched(current, name), stop: () => undefined };
  const stop = reloadOnChange({
    files,
    intervalMs: tls.reload_interval,
    name: 'upstream',
    metrics: ctx.metrics,
    logger: ctx.logger,
    problems: ctx.problems,
    apply: () => {
      current = build();
      ctx.onChange?.();
    },
  });
  return { connect: watched((options, callback) => current(options, callback), name), stop };
}

/**
 * The name the backend's certificate is checked against (and sent as SNI): `upstream.tls.servername`,
 * else the upstream URL's host. Never the client's Host: undici derives a request's servername from
 * its Host header, which let a client choose the name the backend was verified against (any
 * certificate valid for a name of the client's choosing passed) and force a new handshake per request
 * by varying it (a re-probe). Forwarder sends this with every request; an IP is not a server name.
 */
export function upstreamServerName(config: Config): string | undefined {
  const u = new URL(config.upstream.url);
  if (u.protocol !== 'https:') return undefined;
  return config.upstream.tls?.servername ?? u.hostname.replace(/^\[(.*)\]$/, '$1');
}

/** The connector, with each socket it makes watched for a backend's TLS alert (upstream-alerts.ts). */
function watched(connect: buildConnector.connector, serverName: string | undefined): buildConnector.connector {
  const isTls = (code: string): boolean => TLS_ERROR_CODES.has(code);
  // An IP is left to undici (no SNI, RFC 6066; the certificate checked against the IP itself).
  const sni = serverName === undefined || isIP(serverName) !== 0 ? undefined : serverName;
  return (options, callback) =>
    connect({ ...options, servername: sni }, (err, socket) => {
      if (err === null && socket !== null && socket !== undefined) watchTlsAlerts(socket, isTls);
      callback(err, socket as never);
    });
}
