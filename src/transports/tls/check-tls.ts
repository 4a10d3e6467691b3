/**
 * The TLS blocks as `jitgate check-config` checks them (SPEC §11): every file readable and each
 * certificate loadable with its key, each CA file holding certificates (ca-bundle.ts) — what `serve`
 * would find at start — without opening a socket.
 */
import { createSecureContext } from 'node:tls';
import type { Config } from '../../config/schema.ts';
import type { ServerTlsConfig } from '../../config/tls-schema.ts';
import { certificateWindowProblem, secureContextOptions } from './server-tls.ts';
import { checkedUpstreamOptions } from './upstream-tls.ts';

function serverProblem(tls: ServerTlsConfig | undefined, key: string): string | undefined {
  if (tls === undefined) return undefined;
  try {
    createSecureContext(secureContextOptions(tls, key));
    return undefined;
  } catch (err) {
    const message = (err as Error).message;
    return message.startsWith(key) ? message : `${key}: the certificate and key do not load: ${message}`;
  }
}

/** One `key: problem` line per unusable TLS block; empty when all load. */
export function tlsProblems(config: Config): string[] {
  const out: string[] = [];
  for (const p of [serverProblem(config.listen.tls, 'listen.tls'), serverProblem(config.admin.tls, 'admin.tls')]) if (p !== undefined) out.push(p);
  try {
    checkedUpstreamOptions(config);
  } catch (err) {
    out.push((err as Error).message);
  }
  return out;
}

/**
 * `key.cert_file: why` for a listener certificate outside its validity window now: `serve` starts
 * with it (and logs the same warning), but clients that check it refuse the handshake.
 */
export function tlsWarnings(config: Config, nowMs = Date.now()): string[] {
  const out: string[] = [];
  for (const [tls, key] of [
    [config.listen.tls, 'listen.tls'],
    [config.admin.tls, 'admin.tls'],
  ] as const) {
    if (tls === undefined) continue;
    let problem: string | undefined;
    try {
      problem = certificateWindowProblem(secureContextOptions(tls, key).cert as Buffer, nowMs);
    } catch {
      continue; // tlsProblems names an unreadable file
    }
    if (problem !== undefined) out.push(`${key}.cert_file: ${problem}`);
  }
  return out;
}

