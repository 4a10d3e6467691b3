/**
 * CA bundles that hold no certificate (SPEC §11; client_ca_file, upstream.tls.ca_file): empty,
 * garbage, a key, a corrupt certificate. Node would take them and fail every handshake; jitgate
 * refuses them at startup and in check-config naming the key, and on a reload keeps the previous
 * bundle in service, warns and counts result="error".
 */
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type Pki } from '../../fixtures/pki.ts';
import { validateConfig } from '../../../src/config/load.ts';
import { caBundleProblem } from '../../../src/transports/tls/ca-bundle.ts';
import { startGateInProcess, startupError, writeGateConfig, type InProcessGate } from '../../fixtures/servers.ts';
import { tlsCall } from './helpers.ts';

let pki: Pki;
const dirs: string[] = [];
const gates: InProcessGate[] = [];
let backend: Server | undefined;

beforeAll(async () => {
  pki = await makePki();
});
afterAll(async () => {
  await Promise.all(gates.map((g) => g.close()));
  backend?.closeAllConnections();
  await new Promise((r) => (backend === undefined ? r(undefined) : backend.close(r)));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  await pki?.remove();
});

const CORRUPT = '-----BEGIN CERTIFICATE-----\nTUlJQm9uZXNlbnNl\n-----END CERTIFICATE-----\n';
/** name → file contents that are not a CA bundle */
const BAD: [string, () => string][] = [
  ['empty', () => ''],
  ['garbage', () => 'not a certificate at all\n'],
  ['a private key', () => readFileSync(pki.ca.key, 'utf8')],
  ['a corrupt certificate block', () => CORRUPT],
  ['a good certificate then a key', () => readFileSync(pki.ca.cert, 'utf8') + readFileSync(pki.ca.key, 'utf8')],
  ['a certificate block that does not end', () => readFileSync(pki.ca.cert, 'utf8').replace('-----END CERTIFICATE-----', '')],
  // A probe gave a workload's own certificate as client_ca_file: accepted, and every handshake then failed.
  ['a leaf certificate (CA:FALSE, issued by another)', () => readFileSync(pki.workloadA.cert, 'utf8')],
];

async function badFile(name: string, text: string): Promise<string> {
  const f = join(pki.dir, `bad-ca-${name.replace(/\W+/g, '-')}.pem`);
  await writeFile(f, text);
  return f;
}

async function until(probe: () => Promise<boolean>, ms = 5_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  let last = await probe();
  while (!last && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
    last = await probe();
  }
  return last;
}

describe('caBundleProblem', () => {
  it.each(BAD)('refuses %s', (_name, text) => {
    expect(caBundleProblem(Buffer.from(text()))).toBeTypeOf('string');
  });

  it('names the leaf: no self-signed certificate in it', () => {
    expect(caBundleProblem(readFileSync(pki.workloadA.cert))).toMatch(/^holds no self-signed \(root\) certificate: its certificate is issued by another/);
    // A leaf beside a CA is a bundle with an anchor: accepted.
    expect(caBundleProblem(Buffer.concat([readFileSync(pki.workloadA.cert), readFileSync(pki.ca.cert)]))).toBeUndefined();
  });

  // A re-probe: an intermediate CA alone (CA:TRUE) passed the first version of this check, and node, which
  // trusts no partial chain, then refused every client and every backend.
  it('names an intermediate CA alone; accepts it beside its root', () => {
    const run = (args: string[]) => execFileSync('openssl', args, { cwd: pki.dir, stdio: 'pipe' });
    run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'inter.key', '-out', 'inter.csr', '-subj', '/CN=intermediate CA']);
    writeFileSync(join(pki.dir, 'inter.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
    run(['x509', '-req', '-in', 'inter.csr', '-CA', pki.ca.cert, '-CAkey', pki.ca.key, '-set_serial', '0x1234', '-days', '2', '-sha256', '-extfile', 'inter.ext', '-out', 'inter.crt']);
    const inter = readFileSync(join(pki.dir, 'inter.crt'));
    expect(caBundleProblem(inter)).toMatch(/^holds no self-signed \(root\) certificate/);
    expect(caBundleProblem(Buffer.concat([inter, readFileSync(pki.ca.cert)]))).toBeUndefined();
    // The intermediate beside an unrelated root (a later re-probe): the root's clients verify, the intermediate's never do.
    expect(caBundleProblem(Buffer.concat([readFileSync(pki.backendCa.cert), inter]))).toMatch(/^certificate 2 \(CN=intermediate CA\) is issued by .*, and no CA certificate in the bundle /);
    // A leaf under the intermediate, listed before both: every certificate leads to the root.
    run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'under.key', '-out', 'under.csr', '-subj', '/CN=under intermediate']);
    run(['x509', '-req', '-in', 'under.csr', '-CA', 'inter.crt', '-CAkey', 'inter.key', '-set_serial', '0x1235', '-days', '2', '-sha256', '-out', 'under.crt']);
    const under = readFileSync(join(pki.dir, 'under.crt'));
    expect(caBundleProblem(Buffer.concat([under, inter, readFileSync(pki.ca.cert)]))).toBeUndefined();
    expect(caBundleProblem(Buffer.concat([under, readFileSync(pki.ca.cert)]))).toMatch(/^certificate 1 \(CN=under intermediate\) is issued by CN=intermediate CA/);
  });

  // A re-probe of the chain rule (2026-12-08): names compared as OpenSSL compares them, issuers that may issue,
  // and anchors in their validity.
  describe('as OpenSSL builds chains', () => {
    const run = (args: string[]) => execFileSync('openssl', args, { cwd: pki.dir, stdio: 'pipe' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    const ca = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
    const inter = (name: string, signer: string) => {
      run(['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
      writeFileSync(join(pki.dir, `${name}.ext`), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n');
      run(['x509', '-req', '-in', `${name}.csr`, '-CA', `${signer}.crt`, '-CAkey', `${signer}.key`, '-set_serial', '0x77', '-days', '2', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`]);
      return readFileSync(join(pki.dir, `${name}.crt`));
    };

    it('an issuer named in other case is the same name (OpenSSL folds case): accepted', () => {
      run(['req', '-x509', ...ec, '-keyout', 'upper.key', '-out', 'upper.crt', '-days', '2', '-subj', '/CN=ROOT A', ...ca]);
      const under = inter('case-inter', 'upper');
      // The same key, self-signed as "Root A": the intermediate's issuer reads "ROOT A".
      run(['req', '-x509', '-new', '-key', 'upper.key', '-out', 'lower.crt', '-days', '2', '-subj', '/CN=Root A', ...ca]);
      expect(caBundleProblem(Buffer.concat([readFileSync(join(pki.dir, 'lower.crt')), under]))).toBeUndefined();
    });

    it('an issuer that may not issue (CA:FALSE) leads nowhere: refused, naming what it signed', () => {
      run(['req', '-x509', ...ec, '-keyout', 'not-ca.key', '-out', 'not-ca.crt', '-days', '2', '-subj', '/CN=not a CA', '-addext', 'basicConstraints=critical,CA:FALSE']);
      const under = inter('under-not-ca', 'not-ca');
      expect(caBundleProblem(Buffer.concat([readFileSync(join(pki.dir, 'not-ca.crt')), under]))).toMatch(/^certificate 2 \(CN=under-not-ca\) is issued by CN=not a CA, and no CA certificate/);
    });

    it('an expired root alone verifies nothing: refused; beside a valid root it is one of two anchors: accepted', () => {
      writeFileSync(join(pki.dir, 'old-ca.cnf'), '[ca]\ndefault_ca=d\n[d]\ndatabase=./old-index.txt\nnew_certs_dir=.\nserial=./old-serial\ndefault_md=sha256\npolicy=p\ncopy_extensions=copy\n[p]\ncommonName=supplied\n');
      writeFileSync(join(pki.dir, 'old-index.txt'), '');
      writeFileSync(join(pki.dir, 'old-serial'), '01\n');
      run(['req', '-new', ...ec, '-keyout', 'old.key', '-out', 'old.csr', '-subj', '/CN=old root', ...ca]);
      run(['ca', '-batch', '-config', 'old-ca.cnf', '-selfsign', '-keyfile', 'old.key', '-in', 'old.csr', '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-out', 'old.crt']);
      const old = readFileSync(join(pki.dir, 'old.crt'));
      expect(caBundleProblem(old)).toMatch(/^its root certificate \(CN=old root\) is outside its validity \(Jan  1 00:00:00 2020 GMT to Jan  2 00:00:00 2020 GMT\)/);
      expect(caBundleProblem(Buffer.concat([old, readFileSync(pki.ca.cert)]))).toBeUndefined();
    });
  });

  it('names a leaf beside an unrelated root', () => {
    expect(caBundleProblem(Buffer.concat([readFileSync(pki.backendCa.cert), readFileSync(pki.workloadA.cert)]))).toMatch(/^certificate 2 \(.*\) is issued by .*, and no CA certificate in the bundle /);
  });

  // A second re-probe: the pinned self-signed server certificate cert-manager's SelfSigned issuer and Go make
  // (CA:FALSE, keyUsage digitalSignature only) was refused by a check that also asked for keyCertSign; node trusts it.
  it('accepts a pinned self-signed certificate without keyCertSign', () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'pin.key', '-out', 'pin.crt', '-days', '2', '-subj', '/CN=pinned',
      '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature'], { cwd: pki.dir, stdio: 'pipe' });
    expect(caBundleProblem(readFileSync(join(pki.dir, 'pin.crt')))).toBeUndefined();
  });

  it('accepts certificates with text between them (bundle comments)', async () => {
    const two = `# workloads\n${await readFile(pki.ca.cert, 'utf8')}\nsubject=CN = backend CA\n${await readFile(pki.backendCa.cert, 'utf8')}`;
    expect(caBundleProblem(Buffer.from(two))).toBeUndefined();
  });
});

describe('at startup', () => {
  it.each(BAD)('listen.tls.client_ca_file holding %s stops startup naming the key', async (name, text) => {
    const f = await badFile(name, text());
    const err = await startupError('http://127.0.0.1:9', (c) => (c.listen.tls = { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: f }));
    expect(err.message).toMatch(/^listen\.tls\.client_ca_file: .* (holds|certificate 1 does not parse)/);
  });

  it('upstream.tls.ca_file and admin.tls.client_ca_file holding garbage stop startup naming the key', async () => {
    const f = await badFile('garbage', 'garbage\n');
    expect((await startupError('https://127.0.0.1:9', (c) => (c.upstream.tls = { ca_file: f }))).message).toMatch(/^upstream\.tls\.ca_file: .* holds no PEM certificate/);
    expect((await startupError('http://127.0.0.1:9', (c) => (c.admin.tls = { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: f }))).message).toMatch(/^admin\.tls\.client_ca_file: .* holds no PEM certificate/);
  });

  it('check-config names every such bundle', async () => {
    const { checkConfig } = await import('../../../src/cli/check-config.ts');
    const empty = await badFile('empty', '');
    const { dir, file, raw } = await writeGateConfig('https://127.0.0.1:9', (c) => {
      c.listen.tls = { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: empty };
      c.upstream.tls = { ca_file: empty };
    });
    dirs.push(dir);
    const err = await checkConfig(validateConfig(raw, file), file).then(() => undefined, (e: Error) => e);
    expect(String(err)).toMatch(/listen\.tls\.client_ca_file: .* holds no PEM certificate/);
    expect(String(err)).toMatch(/upstream\.tls\.ca_file: .* holds no PEM certificate/);
  });
});

describe('on reload', () => {
  const reloads = async (g: InProcessGate, listener: string, result: 'ok' | 'error') =>
    new RegExp(`jitgate_tls_reloads_total\\{listener="${listener}",result="${result}"\\} [1-9]`).test(await g.running.metrics.metrics());

  it('a client CA file rewritten as garbage keeps the previous bundle: clients are still verified, result="error", a warning', async () => {
    const caFile = join(pki.dir, 'live-clients-ca.pem');
    await copyFile(pki.ca.cert, caFile);
    const g = await startGateInProcess('http://127.0.0.1:9', (c) => (c.listen.tls = { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: caFile, require_client_cert: true, reload_interval: '50ms' }));
    gates.push(g);
    dirs.push(g.dir);
    const port = g.running.listeners.proxy.port;
    expect((await tlsCall(port, '/orders/42', { ca: pki.ca, client: pki.workloadA })).reason).toBe('missing_token');
    await writeFile(caFile, 'garbage\n');
    expect(await until(() => reloads(g, 'proxy', 'error'))).toBe(true);
    expect(await reloads(g, 'proxy', 'ok')).toBe(false);
    expect(g.logs.some((l) => l.level === 'warn' && /do not load/.test(String(l.msg)) && /client_ca_file/.test(String(l.err)))).toBe(true);
    expect((await tlsCall(port, '/orders/42', { ca: pki.ca, client: pki.workloadA })).reason).toBe('missing_token');
  });

  it('an upstream CA file rewritten as empty keeps the previous connector: requests still reach the backend', async () => {
    backend = createServer({ cert: readFileSync(pki.backend.cert), key: readFileSync(pki.backend.key) }, (_req, res) => res.end('backend ok'));
    await new Promise<void>((r) => backend!.listen(0, '127.0.0.1', r));
    const caFile = join(pki.dir, 'live-backend-ca.pem');
    await copyFile(pki.backendCa.cert, caFile);
    const g = await startGateInProcess(`https://127.0.0.1:${(backend.address() as AddressInfo).port}`, (c) => (c.upstream.tls = { ca_file: caFile, reload_interval: '50ms' }));
    gates.push(g);
    dirs.push(g.dir);
    const get = async () => {
      backend!.closeAllConnections();
      const res = await fetch(`${g.url}/orders/42`, { headers: { authorization: `Bearer ${await g.token()}` } });
      return res.status;
    };
    expect(await get()).toBe(200);
    await writeFile(caFile, '');
    expect(await until(() => reloads(g, 'upstream', 'error'))).toBe(true);
    expect(await reloads(g, 'upstream', 'ok')).toBe(false);
    expect(await get()).toBe(200);
  });
});
