/**
 * `jitgate demo` as a user runs it: a child process on free ports, whose printed curl commands are executed
 * (with undici's fetch, and with the real curl when it is installed) and must get the status their `# expect` line
 * names — 200 allowed, 403 outside the grant, 401 expired, 401 revoked, and over mTLS with the printed certificate
 * files: the bound token 200 with workload A's certificate, 401 with B's or none, the SPIFFE subject 401. Then
 * SIGTERM must stop it with exit 0, every port closed and the demo folder kept. Without openssl on PATH the banner
 * says the mTLS example was skipped and why, and the plain demo still works.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.ts';
import { certThumbprint } from '../../src/issuing/cert-thumbprint.ts';
import { prepareWorkspace } from '../../src/demo/workspace.ts';
import { runCli } from '../fixtures/cli.ts';
import { tempDir } from '../fixtures/keys.ts';
import { startDemo, type Demo } from '../fixtures/demo.ts';
import { CLI } from '../fixtures/servers.ts';

interface PrintedRequest {
  readonly expect: number;
  readonly why: string;
  readonly line: string;
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly url: string;
  /** --cacert, and --cert/--key when the line presents a client certificate (paths resolved). */
  readonly tls?: { readonly ca: string; readonly cert?: string; readonly key?: string };
}

/** Splits a curl line the way sh would for the forms the demo prints (single-quoted words, no escapes). */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/'([^']*)'|(\S+)/g)) out.push(m[1] ?? m[2]!);
  return out;
}

/** Every `curl ` line with the `# expect` line above it; a curl line without one is a format error. */
function parsePrinted(stdout: string): PrintedRequest[] {
  const lines = stdout.split('\n');
  const out: PrintedRequest[] = [];
  lines.forEach((line, i) => {
    if (!line.startsWith('curl ')) return;
    const m = /^# expect (\d{3}) — (.+)$/.exec(lines[i - 1] ?? '');
    if (m === null) throw new Error(`curl line ${i + 1} has no "# expect <status>" line above it`);
    const w = words(line);
    let method = 'GET';
    const headers: Record<string, string> = {};
    let url: string | undefined;
    const files: Record<string, string> = {};
    for (let j = 1; j < w.length; j++) {
      if (w[j] === '-i') continue;
      if (w[j] === '--cacert' || w[j] === '--cert' || w[j] === '--key') files[w[j]!.replace(/^--/, '')] = resolve(w[++j]!);
      else if (w[j] === '-X') method = w[++j]!;
      else if (w[j] === '-H') {
        const h = w[++j]!;
        const colon = h.indexOf(':');
        headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
      } else if (url === undefined && /^https?:\/\//.test(w[j]!)) url = w[j];
      else throw new Error(`curl line ${i + 1}: unexpected word ${w[j]}`);
    }
    if (url === undefined) throw new Error(`curl line ${i + 1} has no URL`);
    if (url.startsWith('https:') !== (files.cacert !== undefined)) throw new Error(`curl line ${i + 1}: --cacert goes with an https URL and only with one`);
    if ((files.cert === undefined) !== (files.key === undefined)) throw new Error(`curl line ${i + 1}: --cert without --key or the other way round`);
    const tls = files.cacert === undefined ? undefined : { ca: files.cacert, cert: files.cert, key: files.key };
    out.push({ expect: Number(m[1]), why: m[2]!, line, method, headers, url, tls });
  });
  return out;
}

/** The shell commands of the "More:" block, continuation lines joined. */
function hintCommands(stdout: string): string[] {
  const block = stdout.slice(stdout.indexOf('\nMore:\n'));
  return block
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('curl ') || l.startsWith('TOKEN='));
}

/** The reason a `# expect` line names, as `(reason "x")`. */
function reasonOf(why: string): string | undefined {
  return /\(reason "([a-z_]+)"\)/.exec(why)?.[1];
}

/** Sends a printed request as curl would: over TLS with the printed CA and client certificate files. */
async function send(p: PrintedRequest): Promise<{ status: number; headers: Headers; body: string }> {
  const dispatcher =
    p.tls === undefined
      ? undefined
      : new Agent({
          connect: {
            ca: await readFile(p.tls.ca),
            ...(p.tls.cert === undefined ? {} : { cert: await readFile(p.tls.cert), key: await readFile(p.tls.key!) }),
          },
        });
  try {
    const res = await undiciFetch(p.url, { method: p.method, headers: p.headers, dispatcher });
    return { status: res.status, headers: res.headers as unknown as Headers, body: await res.text() };
  } finally {
    await dispatcher?.close();
  }
}

/** Resolves with the connect error's code ('ECONNREFUSED' once nothing listens), or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}

async function hasCurl(): Promise<boolean> {
  try {
    await promisify(execFile)('curl', ['--version']);
    return true;
  } catch {
    return false;
  }
}

describe('jitgate demo (child process on free ports)', () => {
  let demo: Demo;
  let printed: PrintedRequest[];

  beforeAll(async () => {
    demo = await startDemo(await tempDir('jitgate-demo-test-'));
    printed = parsePrinted(demo.stdout);
  });

  afterAll(() => {
    if (demo?.child.exitCode === null) demo.child.kill('SIGKILL');
  });

  it('prints the four required cases: allowed 200, outside the grant 403, expired 401, revoked 401', () => {
    const summary = printed.map((p) => `${p.expect} ${p.why.split(':')[0]}`);
    expect(summary).toEqual(expect.arrayContaining(['200 allowed', '403 outside the grant', '401 expired', '401 revoked']));
    // The printed URLs use the real (free) ports, not the defaults.
    for (const p of printed) expect(['8080', '8443']).not.toContain(new URL(p.url).port);
  });

  it('prints the mTLS cases: bound token with its certificate 200, with another or none 401, SPIFFE subject 401', () => {
    const mtls = printed.filter((p) => p.tls !== undefined);
    expect(mtls.map((p) => [p.expect, reasonOf(p.why)])).toEqual([
      [200, undefined],
      [401, 'cert_binding_mismatch'],
      [401, 'cert_required'],
      [401, 'spiffe_id_mismatch'],
    ]);
    expect(mtls.map((p) => [p.tls!.cert?.split('/').pop(), new URL(p.url).protocol])).toEqual([
      ['workload-a.crt', 'https:'],
      ['workload-b.crt', 'https:'],
      [undefined, 'https:'],
      ['workload-b.crt', 'https:'],
    ]);
    // The banner names the gate the lines go to.
    expect(demo.stdout).toContain(`gate (mTLS)    ${new URL(mtls[0]!.url).origin}`);
  });

  it('each printed request gets the status its comment names (run with undici, TLS with the printed files)', async () => {
    for (const p of printed) {
      const { status, headers, body } = await send(p);
      expect({ line: p.why, status }).toEqual({ line: p.why, status: p.expect });
      if (p.expect === 200) {
        const echo = JSON.parse(body) as { identity: Record<string, string>; authorization_forwarded: boolean; path: string };
        expect(echo.identity['x-jit-subject']).toBe('spiffe://demo/ci-deployer');
        expect(echo.authorization_forwarded).toBe(false);
        expect(echo.path).toBe(new URL(p.url).pathname);
        // Over mTLS the backend is told which workload called: A's SPIFFE ID and certificate thumbprint.
        if (p.tls !== undefined) {
          expect(echo.identity['x-jit-spiffe-id']).toBe('spiffe://demo/ci-deployer');
          expect(echo.identity['x-jit-client-cert-sha256']).toBe(await certThumbprint(p.tls.cert!));
        } else expect(echo.identity['x-jit-spiffe-id']).toBeUndefined();
      } else {
        expect(headers.get('cache-control')).toBe('no-store');
      }
      const reason = reasonOf(p.why);
      if (reason !== undefined) expect({ line: p.why, reason: (JSON.parse(body) as { reason?: string }).reason }).toEqual({ line: p.why, reason });
      if (p.expect === 401 && p.why.startsWith('expired')) expect(reason).toBe('expired');
      if (p.expect === 401 && p.why.startsWith('revoked')) expect(reason).toBe('revoked');
      if (p.expect === 403) expect(headers.get('www-authenticate')).toContain('insufficient_scope');
    }
  });

  it('each printed curl line works as pasted into a shell', async (ctx) => {
    if (!(await hasCurl())) ctx.skip();
    for (const p of printed) {
      const { stdout } = await promisify(execFile)('sh', ['-c', `${p.line} -s -o /dev/null -w '%{http_code}'`]);
      expect({ line: p.why, status: Number(stdout) }).toEqual({ line: p.why, status: p.expect });
    }
  });

  it('keeps stdout for the banner and the curl block (logs go to the demo folder), and writes a valid config', async () => {
    expect(demo.stdout).not.toMatch(/^\{"level"/m);
    expect(demo.stdout).toContain('npm run -s jitgate -- mint --key');
    const configPath = join(demo.dir, 'jitgate.yaml');
    const config = parseConfigText(await readFile(configPath, 'utf8'), configPath);
    expect(config.admin.token_file).toBe(join(demo.dir, 'admin-token'));
    expect(config.log.destination).toBe(join(demo.dir, 'jitgate.log'));
    const mtlsPath = join(demo.dir, 'jitgate-mtls.yaml');
    const mtls = parseConfigText(await readFile(mtlsPath, 'utf8'), mtlsPath);
    expect(mtls.listen.tls).toMatchObject({ client_ca_file: join(demo.dir, 'tls', 'ca.crt'), cert_file: join(demo.dir, 'tls', 'server.crt'), require_client_cert: false });
    expect(mtls.service.spiffe_subject).toBe(true);
    expect(mtls.log.destination).toBe(config.log.destination);
  });

  it('the "bind your own token" hint (mint --cnf-cert) makes a token workload B can use, and A cannot', async (ctx) => {
    if (!(await hasCurl())) ctx.skip();
    const cmds = hintCommands(demo.stdout);
    const mint = cmds.find((c) => c.startsWith('TOKEN=$(npm run -s jitgate -- mint ') && c.includes('--cnf-cert'))!;
    const use = cmds.find((c) => c.startsWith('curl ') && c.includes('--cert') && c.includes('$TOKEN'))!;
    expect(use).toContain('workload-b.crt');
    const asA = use.replaceAll('workload-b.', 'workload-a.');
    const script = `${mint.replace('npm run -s jitgate --', `'${process.execPath}' '${CLI}'`)}
${use} -s -o /dev/null -w '%{http_code} '
${asA} -s -w ' %{http_code}'`;
    const { stdout } = await promisify(execFile)('sh', ['-c', script]);
    // The second request prints its head (-i) and body, then its status.
    expect(stdout).toMatch(/^200 HTTP\/1\.1 401 [^]*\{"error":"invalid_token","reason":"cert_binding_mismatch"\} 401$/);
  });

  it('the "mint your own" hint makes a token the gate accepts (npm run jitgate replaced by this Node)', async (ctx) => {
    if (!(await hasCurl())) ctx.skip();
    const cmds = hintCommands(demo.stdout);
    const mint = cmds.find((c) => c.startsWith('TOKEN=$(npm run -s jitgate -- mint '))!;
    const use = cmds.find((c) => c.startsWith('curl ') && c.includes('$TOKEN'))!;
    const script = `${mint.replace('npm run -s jitgate --', `'${process.execPath}' '${CLI}'`)}\n${use} -s -o /dev/null -w '%{http_code}'`;
    const { stdout } = await promisify(execFile)('sh', ['-c', script]);
    expect(stdout).toBe('200');
  });

  it('the revocation hint revokes task demo-4711 through the admin API; the allowed requests then get 401', async (ctx) => {
    if (!(await hasCurl())) ctx.skip();
    const revoke = hintCommands(demo.stdout).find((c) => c.startsWith('curl -i -X POST'))!;
    const { stdout } = await promisify(execFile)('sh', ['-c', `${revoke} -s -o /dev/null -w '%{http_code}'`]);
    expect(stdout).toBe('201');
    const allowed = printed.find((p) => p.expect === 200)!;
    const res = await fetch(allowed.url, { method: allowed.method, headers: allowed.headers });
    expect({ status: res.status, body: await res.json() }).toMatchObject({ status: 401, body: { reason: 'revoked' } });
  });

  it('stops cleanly on SIGTERM with exit code 0: every port closed, the demo folder kept', async () => {
    // Every port the banner names: both gates, the admin listener, the backend.
    const banner = demo.stdout.slice(0, demo.stdout.indexOf('\n# expect'));
    const ports = [...new Set([...banner.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1])))];
    expect(ports).toHaveLength(4);
    for (const port of ports) expect(await tryConnect(port)).toBe('connected');
    demo.child.kill('SIGTERM');
    const result = await Promise.race([
      demo.exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit 10s after SIGTERM\n${demo.stderr}`)), 10_000)),
    ]);
    expect(result).toEqual({ code: 0, signal: null });
    for (const port of ports) expect({ port, result: await tryConnect(port) }).toEqual({ port, result: 'ECONNREFUSED' });
    for (const f of ['private.jwk.json', 'jwks.json', 'admin-token', 'jitgate.yaml', 'jitgate-mtls.yaml', 'tls/ca.crt', 'tls/workload-a.key']) {
      expect({ f, kept: existsSync(join(demo.dir, f)) }).toEqual({ f, kept: true });
    }
  });
});

describe('jitgate demo without the mTLS example', () => {
  /** Starts the demo, runs what checks, then SIGTERM: exit 0 whatever checks found. */
  async function withDemo(options: Parameters<typeof startDemo>[1], check: (demo: Demo) => Promise<void>): Promise<void> {
    const demo = await startDemo(await tempDir('jitgate-demo-nomtls-'), options);
    try {
      await check(demo);
    } finally {
      demo.child.kill('SIGTERM');
    }
    expect(await demo.exited).toEqual({ code: 0, signal: null });
  }

  it('without openssl on PATH: the banner says the mTLS example was skipped and why; the plain lines work', async () => {
    const emptyPath = await tempDir('jitgate-no-openssl-');
    await withDemo({ env: { ...process.env, PATH: emptyPath } }, async (demo) => {
      expect(demo.stdout).toContain('gate (mTLS)    not running — the mTLS example was skipped: the openssl command was not found on PATH');
      expect(demo.stdout).toContain('Workload identity (mTLS): skipped — the openssl command was not found on PATH.');
      const printed = parsePrinted(demo.stdout);
      expect(printed.filter((p) => p.tls !== undefined)).toEqual([]);
      expect(printed.length).toBeGreaterThanOrEqual(5);
      for (const p of printed) expect({ line: p.why, status: (await send(p)).status }).toEqual({ line: p.why, status: p.expect });
      expect(existsSync(join(demo.dir, 'tls'))).toBe(false);
      expect(demo.stdout).not.toContain('--cnf-cert');
    });
  });

  it('--no-mtls leaves the mTLS gate out and says so', async () => {
    await withDemo({ args: ['--no-mtls'] }, async (demo) => {
      expect(demo.stdout).toContain('the mTLS example was skipped: turned off with --no-mtls');
      expect(parsePrinted(demo.stdout).filter((p) => p.tls !== undefined)).toEqual([]);
      expect(existsSync(join(demo.dir, 'tls'))).toBe(false);
    });
  });
});

describe('demo workspace', () => {
  it('reuses the key pair and admin token of an earlier run', async () => {
    const dir = await tempDir('jitgate-demo-ws-');
    const first = await prepareWorkspace(dir);
    const second = await prepareWorkspace(dir);
    expect(first.freshKeys).toBe(true);
    expect(second.freshKeys).toBe(false);
    expect(second.kid).toBe(first.kid);
    expect(second.adminToken).toBe(first.adminToken);
    expect(first.adminToken.length).toBeGreaterThanOrEqual(32);
  });
});

describe('jitgate demo usage', () => {
  const runDemo = (args: string[]) => runCli(['demo', ...args]);

  it('--help prints the options and exits 0', async () => {
    const r = await runDemo(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--backend-port');
    expect(r.stdout).toContain('--tls-port');
    expect(r.stdout).toContain('--no-mtls');
  });

  it('a bad port is a usage error (exit 2)', async () => {
    const r = await runDemo(['--port', '70000']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--port: expected a port number');
    const tls = await runDemo(['--tls-port', 'x']);
    expect(tls.code).toBe(2);
    expect(tls.stderr).toContain('--tls-port: expected a port number');
  });
});
