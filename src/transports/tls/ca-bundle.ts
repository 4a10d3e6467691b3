/**
 * CA bundles (`client_ca_file`, `upstream.tls.ca_file`) checked before they are put in service.
 * Node takes a bundle that holds no certificate — empty, garbage, a key — without a word, and
 * then every handshake fails: every client refused, every upstream request 502. So a bundle must
 * hold at least one certificate, and every PEM block in it must be a certificate node:crypto
 * parses; text between blocks is allowed (OpenSSL ignores it, and bundles carry comments there).
 * Startup, check-config and every reload run this; a reload that fails it keeps the previous
 * files (file-reload.ts).
 */
import { X509Certificate } from 'node:crypto';

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
const BEGIN = /-----BEGIN /g;

/** Why `pem` is not a usable CA bundle, or undefined when it is one. */
export function caBundleProblem(pem: Buffer): string | undefined {
  const text = pem.toString('latin1');
  let certs = 0;
  let blocks = 0;
  for (const m of text.matchAll(BLOCK)) {
    blocks++;
    if (m[1] !== 'CERTIFICATE' || m[3] !== 'CERTIFICATE') return `holds a "${m[1]}" PEM block, not a certificate`;
    try {
      new X509Certificate(m[0]);
    } catch (err) {
      return `certificate ${certs + 1} does not parse: ${(err as Error).message}`;
    }
    certs++;
  }
  if ((text.match(BEGIN)?.length ?? 0) !== blocks) return 'holds a PEM block that does not end';
  return certs === 0 ? 'holds no PEM certificate' : undefined;
}
