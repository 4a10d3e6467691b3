/**
 * RFC 8705 §3.1 `x5t#S256` of a certificate file: base64url of the SHA-256 of its DER, the value
 * `jitgate mint --cnf-cert` binds a token to.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** @throws Error naming the file when it cannot be read or holds no PEM certificate. */
export async function certThumbprint(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read certificate ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  let cert: X509Certificate;
  try {
    // The first certificate of the file is the leaf the client presents.
    cert = new X509Certificate(text);
  } catch (err) {
    throw new Error(`${file} is not a PEM certificate: ${(err as Error).message}`, { cause: err });
  }
  // A CA's certificate (the bundle given by mistake, or a chain file starting with the intermediate) is
  // never a client identity to the gate (client-cert.ts), so a token bound to it could never be used.
  if (cert.ca) throw new Error(`${file}: the first certificate is a CA certificate (basicConstraints CA:TRUE), not a client's; give the workload's own certificate (the leaf)`);
  return createHash('sha256').update(cert.raw).digest('base64url');
}
