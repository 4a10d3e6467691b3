/**
 * `jitgate demo` as a user runs it: a child process on free ports, whose printed curl commands are executed
 * (with fetch, and with the real curl when it is installed) and must get the status their `# expect` line names —
 * 200 allowed, 403 outside the grant, 401 expired, 401 revoked. Then SIGTERM must stop it with exit 0.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.ts';
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
    for (let j = 1; j < w.length; j++) {
      if (w[j] === '-i') continue;
      if (w[j] === '-X') method = w[++j]!;
      else if (w[j] === '-H') {
        const h = w[++j]!;
        const colon = h.indexOf(':');
        headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
      } else if (url === undefined && /^https?:\/\//.test(w[j]!)) url = w[j];
      else throw new Error(`curl line ${i + 1}: unexpected word ${w[j]}`);
    }
    if (url === undefined) throw new Error(`curl line ${i + 1} has no URL`);
    out.push({ expect: Number(m[1]), why: m[2]!, line, method, headers, url });
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
    for (const p of printed) expect(new URL(p.url).port).not.toBe('8080');
  });

  it('each printed request gets the status its comment names (run with fetch)', async () => {
    for (const p of printed) {
      const res = await fetch(p.url, { method: p.method, headers: p.headers });
      const body = await res.text();
      expect({ line: p.why, status: res.status }).toEqual({ line: p.why, status: p.expect });
      if (p.expect === 200) {
        const echo = JSON.parse(body) as { identity: Record<string, string>; authorization_forwarded: boolean; path: string };
        expect(echo.identity['x-jit-subject']).toBe('spiffe://demo/ci-deployer');
        expect(echo.authorization_forwarded).toBe(false);
        expect(echo.path).toBe(new URL(p.url).pathname);
      } else {
        expect(res.headers.get('cache-control')).toBe('no-store');
      }
      if (p.expect === 401 && p.why.startsWith('expired')) expect(JSON.parse(body)).toMatchObject({ reason: 'expired' });
      if (p.expect === 401 && p.why.startsWith('revoked')) expect(JSON.parse(body)).toMatchObject({ reason: 'revoked' });
      if (p.expect === 403) expect(res.headers.get('www-authenticate')).toContain('insufficient_scope');
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

  it('stops cleanly on SIGTERM with exit code 0', async () => {
    demo.child.kill('SIGTERM');
    const result = await Promise.race([
      demo.exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit 10s after SIGTERM\n${demo.stderr}`)), 10_000)),
    ]);
    expect(result).toEqual({ code: 0, signal: null });
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
  });

  it('a bad port is a usage error (exit 2)', async () => {
    const r = await runDemo(['--port', '70000']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--port: expected a port number');
  });
});
