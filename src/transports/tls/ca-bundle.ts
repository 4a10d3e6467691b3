/**
 * CA bundles (`client_ca_file`, `upstream.tls.ca_file`) checked before they are put in service.
 * Node takes a bundle that holds no certificate — empty, garbage, a key — without a word, and
 * then every handshake fails: every client refused, every upstream request 502. So a bundle must
 * hold at least one certificate, every certificate in it must lead to a self-signed one in the
 * same bundle (a trust anchor), and every PEM block in it must be a certificate node:crypto parses;
 * text between blocks is allowed (OpenSSL ignores it, and bundles carry comments there).
 * Startup, check-config and every reload run this; a reload that fails it keeps the previous
 * files (file-reload.ts).
 */
import { X509Certificate } from 'node:crypto';

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
const BEGIN = /-----BEGIN /g;

/** Why `pem` is not a usable CA bundle, or undefined when it is one. */
export function caBundleProblem(pem: Buffer): string | undefined {
  const text = pem.toString('latin1');
  const certs: X509Certificate[] = [];
  let blocks = 0;
  for (const m of text.matchAll(BLOCK)) {
    blocks++;
    if (m[1] !== 'CERTIFICATE' || m[3] !== 'CERTIFICATE') return `holds a "${m[1]}" PEM block, not a certificate`;
    try {
      certs.push(new X509Certificate(m[0]));
    } catch (err) {
      return `certificate ${certs.length + 1} does not parse: ${(err as Error).message}`;
    }
  }
  if ((text.match(BEGIN)?.length ?? 0) !== blocks) return 'holds a PEM block that does not end';
  if (certs.length === 0) return 'holds no PEM certificate';
  const unanchored = unanchoredCertificates(certs);
  if (unanchored.length === 0) return undefined;
  if (unanchored.length === certs.length) {
    return `holds no self-signed (root) certificate: ${certs.length === 1 ? 'its certificate is' : `its ${certs.length} certificates are`} issued by another, and node trusts no partial chain, so nothing can be verified against it`;
  }
  // A stray intermediate or leaf beside an unrelated root (a re-probe): the root verifies its own clients,
  // but everything the stray one was put there to trust fails every handshake, which no operator meant.
  const i = unanchored[0]!;
  return `certificate ${certs.indexOf(i) + 1} (${oneLine(i.subject)}) is issued by ${oneLine(i.issuer)}, which the bundle does not hold: node trusts no partial chain, so nothing under it can be verified; add its issuer up to the root, or remove it`;
}

/**
 * The certificates that no chain inside the bundle leads from to a self-signed one. A trust anchor signs
 * itself: OpenSSL (without partial chains, node's default) ends every chain at one. Not checkIssued(): that
 * also asks for keyCertSign, which a pinned self-signed server certificate (keyUsage digitalSignature only:
 * cert-manager's SelfSigned issuer, Go) lacks, though node trusts it (a re-probe).
 */
function unanchoredCertificates(certs: X509Certificate[]): X509Certificate[] {
  const anchored = new Set(certs.filter((c) => c.subject === c.issuer && c.verify(c.publicKey)));
  let rest = certs.filter((c) => !anchored.has(c));
  // Each pass anchors the certificates issued by one already anchored; a pass that anchors none ends it.
  for (let grew = true; grew && rest.length > 0; ) {
    grew = false;
    rest = rest.filter((c) => {
      for (const a of anchored) {
        if (a.subject === c.issuer && c.verify(a.publicKey)) {
          anchored.add(c);
          grew = true;
          return false;
        }
      }
      return true;
    });
  }
  return rest;
}

function oneLine(dn: string): string {
  return dn.split('\n').join(', ');
}
