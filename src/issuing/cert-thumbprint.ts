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
  return createHash('sha256').update(cert.raw).digest('base64url');
}
