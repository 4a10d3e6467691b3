/**
 * The npm package as a user gets it: `npm pack` builds dist/ (prepack), the tarball is installed into an empty
 * directory without dev dependencies, and its `jitgate` bin runs from the compiled code — on this Node and on
 * the machine's own Node when that is an older one (the package promises Node ≥ 20).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { READY_LINE } from '../fixtures/demo.ts';

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Node binaries to run the installed bin with: this one (24) and the system one when it differs. */
const nodes = [process.execPath, ...(existsSync('/usr/bin/node') ? ['/usr/bin/node'] : [])];

let tmp: string;
let app: string;
let bin: string;
let hadDist: boolean;

beforeAll(async () => {
  hadDist = existsSync(join(repo, 'dist'));
  tmp = await mkdtemp(join(tmpdir(), 'jitgate-pack-'));
  const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', tmp], { cwd: repo, maxBuffer: 16 << 20 });
  const tarball = join(tmp, stdout.trim().split('\n').pop()!);
  app = join(tmp, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), '{"private":true}\n');
  await run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: app, maxBuffer: 16 << 20 });
  bin = join(app, 'node_modules', 'jitgate', 'bin', 'jitgate.js');
}, 240_000);

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
  // prepack builds into the clone; leave it as it was found.
  if (!hadDist) await rm(join(repo, 'dist'), { recursive: true, force: true });
});

const TLS_FILES = ['server', 'admin', 'gate-client'];
const CA_FILES = ['clients-ca.pem', 'backend-ca.pem', 'operators-ca.pem'];

async function selfSignedTlsFiles(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const key = join(dir, 'self.key');
  const crt = join(dir, 'self.crt');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', crt, '-days', '1', '-subj', '/CN=localhost']);
  for (const name of TLS_FILES) {
    await copyFile(crt, join(dir, `${name}.crt`));
    await copyFile(key, join(dir, `${name}.key`));
  }
  for (const name of CA_FILES) await copyFile(crt, join(dir, name));
}

describe('the packed package', () => {
  it('ships compiled code and no TypeScript sources, tests or dev dependencies', async () => {
    const pkg = join(app, 'node_modules', 'jitgate');
    expect(existsSync(join(pkg, 'dist', 'cli', 'index.js'))).toBe(true);
    expect(existsSync(join(pkg, 'src'))).toBe(false);
    expect(existsSync(join(pkg, 'test'))).toBe(false);
    expect(existsSync(join(pkg, 'proto'))).toBe(true);
    const installed = await readdir(join(app, 'node_modules'));
    for (const dev of ['vitest', 'typescript', 'autocannon', 'fast-check']) expect(installed).not.toContain(dev);
    expect(installed).toContain('jose');
  });

  it.each(nodes)('runs `jitgate --help` and `check-config` on the example config with %s', async (node) => {
    const help = await run(node, [bin, '--help']);
    expect(help.stdout).toMatch(/^Usage: jitgate <command>/);

    const cfg = await mkdtemp(join(tmp, 'cfg-'));
    await copyFile(join(app, 'node_modules', 'jitgate', 'config', 'jitgate.yaml'), join(cfg, 'jitgate.yaml'));
    // The example names a key set, a revocation file, an admin token, an audit key, TLS and Redis files beside it: make
    // them as an operator would (one self-signed certificate stands in for every TLS file).
    await run(node, [bin, 'keys', '--out', cfg]);
    await run(node, [bin, 'keys', '--alg', 'EdDSA', '--out', join(cfg, 'audit')]);
    await copyFile(join(cfg, 'audit', 'private.jwk.json'), join(cfg, 'audit-key.jwk.json'));
    await writeFile(join(cfg, 'revoked.jsonl'), '');
    await writeFile(join(cfg, 'admin-token'), 'a'.repeat(40) + '\n', { mode: 0o600 });
    await selfSignedTlsFiles(join(cfg, 'tls'));
    // …and Redis's password and CA files, which serve and check-config read before anything connects.
    await writeFile(join(cfg, 'redis-password'), 'redis-secret\n', { mode: 0o600 });
    await copyFile(join(cfg, 'tls', 'self.crt'), join(cfg, 'redis-ca.pem'));
    const ok = await run(node, [bin, 'check-config', '-c', join(cfg, 'jitgate.yaml')]);
    expect(ok.stdout).toMatch(/^config OK: /);

    await rm(join(cfg, 'jwks.json'));
    const bad = await run(node, [bin, 'check-config', '-c', join(cfg, 'jitgate.yaml')]).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(bad?.code).toBe(1);
    expect(bad?.stderr).toContain('issuers[0].jwks_file');
  });

  it.each(nodes)('runs `jitgate demo` with %s, serving the demo until SIGTERM, its files in the working directory', async (node) => {
    const cwd = await mkdtemp(join(tmp, 'demo-'));
    const child = spawn(node, [bin, 'demo', '--port', '0', '--admin-port', '0', '--tls-port', '0'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`demo printed no ready line in 30 s:\n${out}`)), 30_000);
        // The ready line comes after the signal handlers are installed: a SIGTERM before it would kill, not drain.
        child.stdout.on('data', () => {
          if (out.includes(READY_LINE)) {
            clearTimeout(timer);
            resolve();
          }
        });
        void exited.then((code) => reject(new Error(`demo exited early (${code}):\n${out}`)));
      });
      const url = /curl [^\n]*?(http:\/\/127\.0\.0\.1:\d+\/[^\s'"]*)/.exec(out)?.[1];
      expect(url).toBeDefined();
      // The compiled demo makes its PKI and runs the mTLS gate too (openssl is there, as in every test run).
      expect(out).toMatch(/gate \(mTLS\)\s+https:\/\/127\.0\.0\.1:\d+/);
      expect(existsSync(join(cwd, '.jitgate-demo', 'tls', 'workload-a.crt'))).toBe(true);
      expect(existsSync(join(cwd, '.jitgate-demo'))).toBe(true);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
