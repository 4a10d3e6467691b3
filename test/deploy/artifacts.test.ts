/**
 * Docker is not available in CI, so the Dockerfile and the Kubernetes example are checked for what can drift
 * without it: every file the Dockerfile copies exists, its entry point is what `npm run build` produces, it
 * runs as a numeric non-root user with a HEALTHCHECK on the admin port; the manifest's embedded config passes
 * validation and its probes, ports and mounts agree with that config, also with every optional part (mTLS,
 * status lists, Redis, tracing) uncommented.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { parseConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));

describe('Dockerfile', () => {
  let text: string;
  /** Instructions with line continuations joined: [keyword, rest]. */
  let instructions: [string, string][];

  beforeAll(async () => {
    text = await readFile(root('Dockerfile'), 'utf8');
    instructions = text
      .replace(/\\\n/g, ' ')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'))
      .map((l) => {
        const m = /^\s*([A-Z]+)\s+(.*)$/.exec(l)!;
        return [m[1]!, m[2]!.trim()];
      });
  });

  const all = (keyword: string) => instructions.filter(([k]) => k === keyword).map(([, rest]) => rest);

  it('is two stages on Node 24 slim', () => {
    expect(all('FROM')).toEqual(['node:24-slim AS build', 'node:24-slim AS runtime']);
  });

  it('copies only files that exist in the repository', () => {
    const sources = all('COPY')
      .filter((rest) => !rest.startsWith('--from='))
      .flatMap((rest) => rest.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(0);
    expect(sources.filter((s) => !existsSync(root(s)))).toEqual([]);
  });

  it('runs what npm run build produces (tsconfig.build.json: src → dist)', async () => {
    const build = JSON.parse(await readFile(root('tsconfig.build.json'), 'utf8')) as { compilerOptions: { outDir: string; rootDir: string } };
    expect(build.compilerOptions).toMatchObject({ outDir: 'dist', rootDir: 'src' });
    expect(existsSync(root('src/cli/index.ts'))).toBe(true);
    // --disable-sigusr1: SIGUSR1 never opens node's inspector inside the gate (SIGHUP reopens logs).
    expect(all('ENTRYPOINT')).toEqual(['["node", "--disable-sigusr1", "dist/cli/index.js"]']);
    expect(all('CMD')).toEqual(['["serve", "-c", "/etc/jitgate/jitgate.yaml"]']);
    expect(text).toContain('JITGATE_CONFIG=/etc/jitgate/jitgate.yaml');
    const pkg = JSON.parse(await readFile(root('package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.build).toBe('tsc -p tsconfig.build.json');
    for (const name of ['start', 'serve', 'jitgate']) expect(pkg.scripts[name]).toMatch(/^node --disable-sigusr1 src\/cli\/index\.ts/);
  });

  it('installs production dependencies only, runs as a numeric non-root user, exposes the two ports', () => {
    const runs = all('RUN').join('\n');
    expect(runs).toContain('npm ci --omit=dev');
    const user = all('USER');
    expect(user).toHaveLength(1);
    expect(user[0]).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    expect(all('EXPOSE')).toEqual(['8080 9901']);
  });

  it('health-checks /healthz on the admin port with node (no curl in slim images)', () => {
    const [check] = all('HEALTHCHECK');
    expect(check).toContain('CMD ["node", "-e"');
    expect(check).toContain('http://127.0.0.1:9901/healthz');
  });

  it('keeps the demo folder and node_modules out of the build context', async () => {
    const ignore = (await readFile(root('.dockerignore'), 'utf8')).split('\n');
    expect(ignore).toEqual(expect.arrayContaining(['node_modules', '.jitgate-demo', '.git', 'dist']));
  });
});

type Doc = { kind: string; metadata: { name: string }; data?: Record<string, string>; spec?: any };

/**
 * The manifest with every optional part uncommented: after each comment line ending in "Uncomment to enable:",
 * the comment lines that follow (up to a line that is not a comment, or the next such marker) lose their `# `.
 */
function uncommentOptional(text: string): { text: string; blocks: number } {
  const out: string[] = [];
  let inBlock = false;
  let blocks = 0;
  for (const line of text.split('\n')) {
    const comment = /^(\s*)# ?(.*)$/.exec(line);
    if (comment !== null && /Uncomment to enable:\s*$/.test(line)) {
      inBlock = true;
      blocks++;
      out.push(line);
    } else if (inBlock && comment !== null) out.push(comment[1]! + comment[2]!);
    else {
      inBlock = false;
      out.push(line);
    }
  }
  return { text: out.join('\n'), blocks };
}

function loadManifest(text: string): { docs: Doc[]; config: Config; pod: any; jitgate: any } {
  const parsed = parseAllDocuments(text);
  for (const d of parsed) expect(d.errors).toEqual([]);
  const docs = parsed.map((d) => d.toJS() as Doc).filter((d) => d !== null);
  const cm = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'orders-jitgate')!;
  const config = parseConfigText(cm.data!['jitgate.yaml']!, '/etc/jitgate/jitgate.yaml');
  const pod = docs.find((d) => d.kind === 'Deployment')!.spec.template.spec;
  return { docs, config, pod, jitgate: pod.containers.find((c: { name: string }) => c.name === 'jitgate') };
}

/** Every file the config names, for the mount check. */
function filesOf(config: Config): string[] {
  const tls = config.listen.tls;
  return [
    '/etc/jitgate/jitgate.yaml',
    ...config.issuers.flatMap((i) => (i.jwks_file === undefined ? [] : [i.jwks_file])),
    config.admin.token_file!,
    config.revocation.journal!,
    ...(tls === undefined ? [] : [tls.cert_file, tls.key_file, ...(tls.client_ca_file === undefined ? [] : [tls.client_ca_file])]),
    ...(config.redis?.password_file === undefined ? [] : [config.redis.password_file]),
  ];
}

function uncovered(jitgate: any, pod: any, files: string[]): string[] {
  const mounts: { name: string; mountPath: string }[] = jitgate.volumeMounts;
  const volumes = new Set(pod.volumes.map((v: { name: string }) => v.name));
  const covered = (file: string) => mounts.some((m) => volumes.has(m.name) && (file === m.mountPath || file.startsWith(`${m.mountPath}/`)));
  return files.filter((f) => !covered(f));
}

describe('deploy/k8s/sidecar.yaml', () => {
  let docs: Doc[];
  let config: Config;
  let jitgate: any;
  let pod: any;

  beforeAll(async () => {
    ({ docs, config, pod, jitgate } = loadManifest(await readFile(root('deploy/k8s/sidecar.yaml'), 'utf8')));
  });

  it('embeds a config that passes validation', () => {
    expect(config.issuers.map((i) => i.jwks_uri ?? i.jwks_file)).toEqual([
      'https://broker.internal/.well-known/jwks.json',
      '/etc/jitgate/jwks/jwks.json',
    ]);
  });

  it('probes /readyz and /healthz on the admin port the config listens on (not loopback: kubelet uses the pod IP)', () => {
    const admin = jitgate.ports.find((p: { name: string }) => p.name === 'admin');
    expect(admin.containerPort).toBe(config.admin.listen.port);
    expect(config.admin.listen.host).toBe('0.0.0.0');
    expect(jitgate.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
    expect(jitgate.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    expect(jitgate.ports.find((p: { name: string }) => p.name === 'http').containerPort).toBe(config.listen.port);
  });

  it('mounts every file the config names, and the state folder is writable', () => {
    const mounts: { mountPath: string; readOnly?: boolean }[] = jitgate.volumeMounts;
    expect(uncovered(jitgate, pod, filesOf(config))).toEqual([]);
    const state = mounts.find((m) => config.revocation.journal!.startsWith(`${m.mountPath}/`))!;
    expect(state.readOnly).not.toBe(true);
  });

  it('with every optional part uncommented: mTLS, status list, Redis and tracing validate, and the mounts cover their files', async () => {
    const { text, blocks } = uncommentOptional(await readFile(root('deploy/k8s/sidecar.yaml'), 'utf8'));
    expect(blocks).toBe(11);
    const all = loadManifest(text);
    const c = all.config;
    expect(c.listen.tls).toMatchObject({ cert_file: '/etc/jitgate/tls/tls.crt', key_file: '/etc/jitgate/tls/tls.key', client_ca_file: '/etc/jitgate/tls/ca.crt' });
    expect(c.service.spiffe_subject).toBe(true);
    expect(c.issuers[0]!.status_list?.allowed_uris).toEqual(['https://broker.internal/status/']);
    expect(c.issuers[0]!.require_cert_binding).toBe(true);
    expect(c.revocation.redis).toBe(true);
    expect(c.redis?.url).toMatch(/^rediss:\/\//);
    expect(c.dpop.replay).toBe('redis');
    expect(c.tracing?.otlp_endpoint).toMatch(/^http/);
    const files = filesOf(c);
    expect(files.length).toBeGreaterThan(filesOf(config).length);
    expect(uncovered(all.jitgate, all.pod, files)).toEqual([]);
    // …and none of those files is covered while the volumes stay commented (the config part alone is not enough).
    expect(uncovered(jitgate, pod, files)).toEqual(['/etc/jitgate/tls/tls.crt', '/etc/jitgate/tls/tls.key', '/etc/jitgate/tls/ca.crt', '/etc/jitgate/redis/password']);
  });

  it('runs jitgate as the image user, non-root, read-only root filesystem; the grace period outlasts shutdown.grace', () => {
    expect(jitgate.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(config.shutdown.grace + 5_000);
    expect(config.upstream.url).toMatch(/^http:\/\/127\.0\.0\.1:/);
  });

  it('the Service targets the gate port, never the backend', () => {
    const svc = docs.find((d) => d.kind === 'Service')!;
    expect(svc.spec.ports.map((p: { targetPort: string }) => p.targetPort)).toEqual(['http']);
  });

  it('is plain YAML a kubectl apply accepts (every document has apiVersion, kind, metadata.name)', async () => {
    const text = await readFile(root('deploy/k8s/sidecar.yaml'), 'utf8');
    const raw = text.split(/^---$/m).map((t) => parseYaml(t) as Record<string, unknown> | null).filter((d) => d !== null);
    for (const d of raw) expect(Object.keys(d!)).toEqual(expect.arrayContaining(['apiVersion', 'kind', 'metadata']));
  });
});
