/**
 * CA bundles (`client_ca_file`, `upstream.tls.ca_file`) checked before they are put in service.
 * Node takes a bundle that holds no certificate — empty, garbage, a key — without a word, and
 * then every handshake fails: every client refused, every upstream request 502. So a bundle must
 * hold at least one certificate, one of them self-signed (a trust anchor), and every PEM
 * block in it must be a certificate node:crypto parses; text between blocks is allowed (OpenSSL ignores it, and bundles carry comments there).
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
  let anchored = false;
  for (const m of text.matchAll(BLOCK)) {
    blocks++;
    if (m[1] !== 'CERTIFICATE' || m[3] !== 'CERTIFICATE') return `holds a "${m[1]}" PEM block, not a certificate`;
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(m[0]);
    } catch (err) {
      return `certificate ${certs + 1} does not parse: ${(err as Error).message}`;
    }
    // A trust anchor signs itself: OpenSSL (without partial chains, node's default) ends every chain at one.
    // Not checkIssued(cert): that also asks for keyCertSign, which a pinned self-signed server certificate
    // (keyUsage digitalSignature only: cert-manager's SelfSigned issuer, Go) lacks, though node trusts it (a re-probe).
    if (!anchored && cert.subject === cert.issuer && cert.verify(cert.publicKey)) anchored = true;
    certs++;
  }
  if ((text.match(BEGIN)?.length ?? 0) !== blocks) return 'holds a PEM block that does not end';
  if (certs === 0) return 'holds no PEM certificate';
  // Only a self-signed certificate (a root, or a pinned self-signed server certificate) anchors a chain;
  // a leaf or an intermediate alone verifies nothing, and every handshake would fail (black-box probes:
  // a workload's certificate given as client_ca_file, then an intermediate CA alone).
  return !anchored ? `holds no self-signed (root) certificate: ${certs === 1 ? 'its certificate is' : `its ${certs} certificates are`} issued by another, and node trusts no partial chain, so nothing can be verified against it` : undefined;
}
