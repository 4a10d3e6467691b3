/**
 * A client certificate that is a CA certificate (basicConstraints cA=true) is no client identity
 * (SPIFFE X509-SVID §4.1: leaves are cA=false), though it chains to client_ca_file and OpenSSL's
 * handshake accepts it: on the TLS listener it counts as no certificate (require_client_cert: true
 * cuts the connection before any request), and from a trusted proxy it is client_cert_malformed.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certFiles, type CertFiles } from '../../../src/issuing/dev-pki.ts';
import { fromPem } from '../../../src/transports/tls/client-cert.ts';
import { parseTraefikCert, parseXfcc } from '../../../src/transports/tls/xfcc.ts';
import { makePki, SPIFFE_A, traefikCertHeader, type Pki } from '../../fixtures/pki.ts';
import { startMtlsGates, startRecordingUpstream, type InProcessGate, type MtlsGates, type RecordingUpstream } from '../../fixtures/servers.ts';
import { handshakeFailures, tlsCall } from './helpers.ts';

const run = promisify(execFile);
let pki: Pki;
/** Signed by the workloads' CA, clientAuth, URI SAN spiffe://prod/ci-deployer — and cA=true. */
let caLeaf: CertFiles;
let upstream: RecordingUpstream;
let gates: MtlsGates;
let gate: InProcessGate;
let strict: InProcessGate;
let spiffe: InProcessGate;

beforeAll(async () => {
  pki = await makePki();
  const o = (args: string[]) => run('openssl', args, { cwd: pki.dir });
  await o(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca-leaf.key', '-out', 'ca-leaf.csr', '-subj', '/CN=ci-deployer']);
  await writeFile(join(pki.dir, 'ca-leaf.ext'), `basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,keyCertSign\nextendedKeyUsage=clientAuth\nsubjectAltName=URI:${SPIFFE_A}\n`);
  await o(['x509', '-req', '-in', 'ca-leaf.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', '0x77', '-days', '2', '-sha256', '-extfile', 'ca-leaf.ext', '-out', 'ca-leaf.crt']);
  caLeaf = await certFiles(pki.dir, 'ca-leaf');
  upstream = await startRecordingUpstream();
  gates = await startMtlsGates(pki, upstream.url);
  ({ gate, strict, spiffe } = gates);
});
afterAll(async () => {
  await gates?.close();
  await upstream?.close();
  await pki?.remove();
});

const port = (g: InProcessGate) => g.running.listeners.proxy.port;
const call = async (g: InProcessGate, token: string, client: CertFiles) => tlsCall(port(g), '/orders/42', { ca: pki.ca, client, headers: { authorization: `Bearer ${token}` } });

describe('a CA certificate presented as the client certificate', () => {
  it('is a certificate the handshake verifies (the premise)', async () => {
    const r = await call(gate, await gate.token(), caLeaf);
    expect(r.status).toBe(200);
  });

  it('does not satisfy a token bound to it: cert_required', async () => {
    const r = await call(gate, await gate.token({ cnf: { 'x5t#S256': caLeaf.x5t } }), caLeaf);
    expect([r.status, r.reason]).toEqual([401, 'cert_required']);
  });

  it('names no SPIFFE ID: spiffe_id_missing', async () => {
    const r = await call(spiffe, await spiffe.token(), caLeaf);
    expect([r.status, r.reason]).toEqual([401, 'spiffe_id_missing']);
    // The workload's own leaf with the same URI SAN passes.
    expect((await call(spiffe, await spiffe.token(), pki.workloadA)).status).toBe(200);
  });

  it('gives the backend no identity headers', async () => {
    const before = upstream.requests.length;
    expect((await call(gate, await gate.token(), caLeaf)).status).toBe(200);
    const got = upstream.requests[before]!;
    expect([got.headers['x-jit-client-cert-sha256'], got.headers['x-jit-spiffe-id']]).toEqual([undefined, undefined]);
  });

  it('with require_client_cert: true, the connection is cut before any request is decided, and counted', async () => {
    const failures = await handshakeFailures(strict);
    const decisions = strict.logs.filter((l) => l.type === 'audit').length;
    await expect(call(strict, await strict.token(), caLeaf)).rejects.toThrow();
    expect(await handshakeFailures(strict)).toBe(failures + 1);
    expect(strict.logs.filter((l) => l.type === 'audit').length).toBe(decisions);
    // A workload leaf still gets in, on a resumed session too.
    expect((await call(strict, await strict.token(), pki.workloadA)).status).toBe(200);
    const session = await new Promise<Buffer>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: port(strict), servername: 'localhost', ca: readFileSync(pki.ca.cert), cert: readFileSync(pki.workloadA.cert), key: readFileSync(pki.workloadA.key) });
      s.once('session', (sess: Buffer) => {
        s.end();
        resolve(sess);
      });
      s.on('error', reject);
      s.resume();
    });
    const resumed = await new Promise<[boolean, string]>((resolve, reject) => {
      let reused = false;
      const s = connect({ host: '127.0.0.1', port: port(strict), servername: 'localhost', ca: readFileSync(pki.ca.cert), cert: readFileSync(pki.workloadA.cert), key: readFileSync(pki.workloadA.key), session }, () => {
        reused = s.isSessionReused();
        s.write('GET /orders/42 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      });
      let text = '';
      s.on('data', (d: Buffer) => (text += d.toString()));
      s.on('close', () => resolve([reused, text.slice(0, 12)]));
      s.on('error', reject);
    });
    expect(resumed).toEqual([true, 'HTTP/1.1 401']);
  });

  it('from a trusted proxy (XFCC Cert=, Traefik, source.certificate PEM) is client_cert_malformed', () => {
    expect(fromPem(caLeaf.pem)).toBeNull();
    expect(parseXfcc(`Cert="${encodeURIComponent(caLeaf.pem)}"`)).toBe('malformed');
    expect(parseTraefikCert(traefikCertHeader([caLeaf.pem]))).toBe('malformed');
    expect(fromPem(pki.workloadA.pem)).not.toBeNull();
  });
});

describe("a certificate whose extendedKeyUsage leaves out clientAuth (a server's), forwarded by a trusted proxy", () => {
  /** A leaf of the workloads' CA with `eku` (none: no extendedKeyUsage extension) and workload A's SPIFFE ID. */
  async function leaf(name: string, eku: string | undefined): Promise<CertFiles> {
    const o = (args: string[]) => run('openssl', args, { cwd: pki.dir });
    await o(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=ci-deployer']);
    await writeFile(join(pki.dir, `${name}.ext`), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n${eku === undefined ? '' : `extendedKeyUsage=${eku}\n`}subjectAltName=URI:${SPIFFE_A}\n`);
    await o(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', '0x78', '-days', '2', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`]);
    return certFiles(pki.dir, name);
  }

  it('names no workload: XFCC Cert=, Traefik and source.certificate are client_cert_malformed; without the extension, or with clientAuth, it does', async () => {
    for (const eku of ['serverAuth', 'anyExtendedKeyUsage', 'emailProtection,codeSigning']) {
      const c = await leaf(`eku-${eku.replace(/\W/g, '-')}`, eku);
      expect(fromPem(c.pem), eku).toBeNull();
      expect(parseXfcc(`Cert="${encodeURIComponent(c.pem)}"`), eku).toBe('malformed');
      expect(parseTraefikCert(traefikCertHeader([c.pem])), eku).toBe('malformed');
    }
    for (const eku of [undefined, 'serverAuth,clientAuth']) {
      const c = await leaf(`eku-ok-${eku === undefined ? 'none' : 'both'}`, eku);
      expect(fromPem(c.pem), String(eku)).toMatchObject({ spiffeId: SPIFFE_A });
      expect(parseXfcc(`Cert="${encodeURIComponent(c.pem)}"`), String(eku)).toMatchObject({ spiffeId: SPIFFE_A });
    }
  });
});
