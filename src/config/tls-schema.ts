/**
 * TLS blocks of the config (SPEC §11): `listen.tls` and `admin.tls` (a listener's certificate and,
 * optionally, the CA bundle its clients' certificates are verified against) and `upstream.tls`
 * (how jitgate verifies the backend, and the certificate it presents there).
 */
import { z } from 'zod';
import { parseDuration, TIMER_MAX_MS } from './duration.ts';

const file = z.string().min(1, 'expected a file path');

/** How often a TLS block's files are checked for a change (rotation without restart). */
const reloadInterval = z
  .string()
  .transform((text, ctx) => {
    const ms = parseDuration(text);
    // At most 24 days: a longer interval overflows node's timer and polls every millisecond.
    if (ms === undefined || ms < 10 || ms > TIMER_MAX_MS) {
      ctx.addIssue({ code: 'custom', message: `expected a duration like "1s" (at least 10ms, at most 24d), got ${JSON.stringify(text)}` });
      return z.NEVER;
    }
    return ms;
  })
  .default(1_000);

/** A listener's TLS: absent means plain HTTP, as before. */
export const serverTlsSchema = z
  .strictObject({
    cert_file: file,
    key_file: file,
    /** Set: client certificates are requested and verified against this bundle. */
    client_ca_file: file.optional(),
    /** true: a handshake without a client certificate that verifies is refused. Needs client_ca_file. */
    require_client_cert: z.boolean().default(false),
    /** How often the three files are checked for a change (rotation without restart). */
    reload_interval: reloadInterval,
  })
  .superRefine((v, ctx) => {
    if (v.require_client_cert && v.client_ca_file === undefined) {
      ctx.addIssue({ code: 'custom', path: ['require_client_cert'], message: 'needs client_ca_file: client certificates are verified against that bundle' });
    }
  });

/** TLS to the backend (`upstream.url: https://…`). */
export const upstreamTlsSchema = z
  .strictObject({
    /** CA bundle the backend's certificate must chain to; default: Node's built-in roots. */
    ca_file: file.optional(),
    /** jitgate's client certificate for mTLS to the backend; with key_file. */
    cert_file: file.optional(),
    key_file: file.optional(),
    /** SNI and the name the backend's certificate must carry, when not the url's host. */
    servername: z.string().min(1).optional(),
    /** How often ca_file, cert_file and key_file are checked for a change; new connections use the new ones. */
    reload_interval: reloadInterval,
  })
  .superRefine((v, ctx) => {
    if ((v.cert_file === undefined) !== (v.key_file === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'set both cert_file and key_file (mTLS to the backend) or neither' });
    }
  });

export type ServerTlsConfig = z.infer<typeof serverTlsSchema>;
export type UpstreamTlsConfig = z.infer<typeof upstreamTlsSchema>;
