/**
 * A throwaway PKI made with the `openssl` CLI: CAs and leaf certificates (EC P-256, SHA-256) in one folder, for
 * `jitgate demo`'s workload-identity example and for the tests (test/fixtures/pki.ts). Nothing here is meant to
 * outlive a demo run or a test file; no private key it writes is ever committed.
 *
 * Every certificate `name` becomes `<name>.crt` and `<name>.key` in `dir`; signing works relative to `dir`, so
 * a CA is named by the same `name` it was made with.
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CertFiles {
  readonly cert: string;
  readonly key: string;
  /** PEM text of the certificate. */
  readonly pem: string;
  /** base64url SHA-256 of the DER: RFC 8705 `x5t#S256`. */
  readonly x5t: string;
  /** Hex SHA-256 of the DER: Envoy's XFCC `Hash=`. */
  readonly hashHex: string;
}

export type LeafUsage = 'serverAuth' | 'clientAuth' | 'serverAuth,clientAuth';

/** Days a certificate made without explicit dates is valid: long enough for a demo left running, short enough to be throwaway. */
const DAYS = '2';

async function openssl(dir: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

/**
 * Why certificates cannot be made here (for a message such as "skipped: …"), or undefined when the `openssl` CLI
 * answers. Looked up on PATH as every call here does.
 */
export async function opensslProblem(): Promise<string | undefined> {
  try {
    await run('openssl', ['version']);
    return undefined;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') return 'the openssl command was not found on PATH';
    return `openssl version failed: ${(e.stderr ?? '').trim() || e.message}`;
  }
}

/** The files of certificate `name` in `dir`, with its thumbprints. */
export async function certFiles(dir: string, name: string): Promise<CertFiles> {
  const cert = join(dir, `${name}.crt`);
  const pem = await readFile(cert, 'utf8');
  const der = new X509Certificate(pem).raw;
  const digest = createHash('sha256').update(der).digest();
  return { cert, key: join(dir, `${name}.key`), pem, x5t: digest.toString('base64url'), hashHex: digest.toString('hex') };
}

/** A self-signed CA (`name.crt`, `name.key`) that may sign certificates, not be one. */
export async function makeCa(dir: string, name: string, cn: string): Promise<CertFiles> {
  await openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', DAYS, '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return certFiles(dir, name);
}

/**
 * A leaf signed by the CA named `ca` in the same folder, with `san` as subjectAltName (`URI:spiffe://…`,
 * `DNS:localhost,IP:127.0.0.1`). `dates` ([start, end] as `YYYYMMDDHHMMSSZ`) makes it through `openssl ca`, which
 * takes explicit validity: an expired or a not-yet-valid certificate.
 */
export async function makeLeaf(dir: string, name: string, ca: string, cn: string, san: string, usage: LeafUsage, dates?: readonly [string, string]): Promise<CertFiles> {
  await openssl(dir, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  const ext = `${name}.ext`;
  await writeFile(join(dir, ext), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=${usage}\nsubjectAltName=${san}\n`);
  if (dates === undefined) {
    await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-set_serial', `0x${Buffer.from(name).toString('hex')}`, '-days', DAYS, '-sha256', '-extfile', ext, '-out', `${name}.crt`]);
  } else {
    const db = `${name}-ca`;
    await writeFile(join(dir, `${db}.index`), '');
    await writeFile(join(dir, `${db}.serial`), `${Buffer.from(name).toString('hex')}\n`);
    await writeFile(
      join(dir, `${db}.cnf`),
      `[ca]\ndefault_ca=d\n[d]\ndatabase=${db}.index\nserial=${db}.serial\nnew_certs_dir=.\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n`,
    );
    await openssl(dir, ['ca', '-batch', '-notext', '-config', `${db}.cnf`, '-cert', `${ca}.crt`, '-keyfile', `${ca}.key`, '-in', `${name}.csr`, '-out', `${name}.crt`,
      '-startdate', dates[0], '-enddate', dates[1], '-extfile', ext]);
  }
  // The request and its extensions served their purpose; the folder keeps only certificates and keys (and the
  // `openssl ca` database, which names what was signed).
  await Promise.all([rm(join(dir, `${name}.csr`), { force: true }), rm(join(dir, ext), { force: true })]);
  return certFiles(dir, name);
}
