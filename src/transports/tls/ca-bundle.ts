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
/** Signature checks the chain rule may spend on one bundle (a few hundred ms of P-256 verifies at most). */
const MAX_LINK_CHECKS = 5_000;

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
  const anchors = certs.filter(selfSigned);
  const unanchored = unanchoredCertificates(certs, anchors);
  if (unanchored.length === 0) return outOfDate(anchors);
  if (unanchored.length === certs.length) {
    return `holds no self-signed (root) certificate: ${certs.length === 1 ? 'its certificate is' : `its ${certs.length} certificates are`} issued by another, and node trusts no partial chain, so nothing can be verified against it`;
  }
  // A stray intermediate or leaf beside an unrelated root (a re-probe): the root verifies its own clients,
  // but everything the stray one was put there to trust fails every handshake, which no operator meant.
  const i = unanchored[0]!;
  return `certificate ${certs.indexOf(i) + 1} (${oneLine(i.subject)}) is issued by ${oneLine(i.issuer)}, and no CA certificate in the bundle (CA:TRUE, keyCertSign) leading to a root signed it: node trusts no partial chain, so nothing under it can be verified; add its issuer up to the root, or remove it`;
}

/**
 * Every trust anchor outside its validity (expired, or not valid yet): nothing verifies against the bundle (a
 * re-probe: an expired root passed, and every handshake failed). One valid anchor is enough, so a system bundle
 * with one expired root among many still passes.
 */
function outOfDate(anchors: readonly X509Certificate[]): string | undefined {
  const now = Date.now();
  if (anchors.some((c) => Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo))) return undefined;
  const c = anchors[0]!;
  return `its root certificate${anchors.length === 1 ? ` (${oneLine(c.subject)}) is` : 's are all'} outside ${anchors.length === 1 ? 'its' : 'their'} validity (${anchors.length === 1 ? `${c.validFrom} to ${c.validTo}` : 'expired or not yet valid'}), so nothing can be verified against it`;
}

/**
 * A trust anchor: it signs itself. Not checkIssued(c, c), which also asks for keyCertSign: a pinned self-signed
 * server certificate (keyUsage digitalSignature only: cert-manager's SelfSigned issuer, Go) lacks it, though node
 * trusts it (a re-probe). Links below an anchor do use checkIssued (unanchoredCertificates).
 */
function selfSigned(c: X509Certificate): boolean {
  return c.subject === c.issuer && c.verify(c.publicKey);
}

/**
 * The certificates that no chain inside the bundle leads from to one of `anchors` (self-signed: OpenSSL,
 * without partial chains, node's default, ends every chain at one).
 */
function unanchoredCertificates(certs: X509Certificate[], anchors: readonly X509Certificate[]): X509Certificate[] {
  const anchored = new Set(anchors);
  let rest = certs.filter((c) => !anchored.has(c));
  // Certificates sharing one name each pass checkIssued against every other, so the signature checks grow with
  // the square of the bundle (a re-probe: 800 such certificates held a reload, and the event loop, 15 s). Past
  // this many the check gives up and takes the bundle as it is, as it did before it checked chains.
  let budget = MAX_LINK_CHECKS;
  // Each pass anchors the certificates issued by one already anchored; a pass that anchors none ends it.
  for (let grew = true; grew && rest.length > 0; ) {
    grew = false;
    rest = rest.filter((c) => {
      for (const a of anchored) {
        // checkIssued is OpenSSL's own test (names compared as OpenSSL does, case-folded; key identifiers;
        // keyCertSign) before any signature work; CA:TRUE as OpenSSL's chain check asks (a re-probe: a bundle
        // was refused over a DN's case, and issuers without CA:TRUE or keyCertSign passed).
        if (a.ca && c.checkIssued(a) && budget-- > 0 && c.verify(a.publicKey)) {
          anchored.add(c);
          grew = true;
          return false;
        }
      }
      return true;
    });
    if (budget <= 0) return [];
  }
  return rest;
}

function oneLine(dn: string): string {
  return dn.split('\n').join(', ');
}
