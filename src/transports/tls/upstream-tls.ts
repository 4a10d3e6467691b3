/**
 * TLS to the backend (SPEC §11, `upstream.url: https://…` with `upstream.tls`): the options of
 * undici's connector. The backend's certificate is always verified — against `ca_file` when set,
 * else Node's built-in roots — and its name checked (against `servername` when set); a failure is a
 * 502, never a retry in plain text. `cert_file`/`key_file` make it mutual TLS.
 */
import { readFileSync } from 'node:fs';
import type { buildConnector } from 'undici';
import type { Config } from '../../config/schema.ts';
import { StartupError } from '../../errors.ts';

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
  const cert = read('cert_file', tls?.cert_file);
  const key = read('key_file', tls?.key_file);
  if (ca !== undefined) opts.ca = ca;
  if (cert !== undefined) opts.cert = cert;
  if (key !== undefined) opts.key = key;
  if (tls?.servername !== undefined) opts.servername = tls.servername;
  return opts;
}
