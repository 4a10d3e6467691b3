/**
 * A TLS client for the workload-identity tests: one HTTPS request on a fresh connection (no agent),
 * presenting the given client certificate, trusting the given CA; and a handshake-only probe that
 * reports the server's certificate (for rotation).
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:tls';
import type { CertFiles } from '../../fixtures/pki.ts';
import { parseMetrics, send, type InProcessGate } from '../../fixtures/servers.ts';

export interface TlsAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  /** `reason` of a jitgate JSON body, when there is one. */
  readonly reason: string | undefined;
}

export interface TlsCallOptions {
  readonly ca: CertFiles;
  /** The client certificate to present; none when absent. */
  readonly client?: CertFiles;
  readonly method?: string;
  readonly headers?: Record<string, string>;
}

export function tlsCall(port: number, path: string, opts: TlsCallOptions): Promise<TlsAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        servername: 'localhost',
        ca: readFileSync(opts.ca.cert),
        cert: opts.client === undefined ? undefined : readFileSync(opts.client.cert),
        key: opts.client === undefined ? undefined : readFileSync(opts.client.key),
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString();
          let reason: string | undefined;
          try {
            reason = (JSON.parse(body) as { reason?: string }).reason;
          } catch {
            reason = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, reason });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The SHA-256 fingerprint (colon hex) of the certificate the server presents in a handshake. */
export function serverFingerprint(port: number, ca: CertFiles): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(ca.cert) }, () => {
      const fp = s.getPeerX509Certificate()?.fingerprint256 ?? '';
      s.end();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

/** Colon hex as node:crypto's fingerprint256 writes it, from a PKI cert's hex hash. */
export const colonHex = (hex: string): string => hex.toUpperCase().match(/../g)!.join(':');

/** The proxy listener's jitgate_tls_handshake_failures_total, read from the gate's /metrics. */
export async function handshakeFailures(g: InProcessGate): Promise<number> {
  return parseMetrics((await send(g.adminUrl, '/metrics')).text).get('jitgate_tls_handshake_failures_total{listener="proxy"}') ?? 0;
}
