/**
 * Docker is not available in CI, so the Dockerfile and the Kubernetes example are checked for what can drift
 * without it: every file the Dockerfile copies exists, its entry point is what `npm run build` produces, it
 * runs as a numeric non-root user with a HEALTHCHECK on the admin port; the manifest's embedded config passes
 * validation and its probes, ports and mounts agree with that config.
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
    expect(all('ENTRYPOINT')).toEqual(['["node", "dist/cli/index.js"]']);
    expect(all('CMD')).toEqual(['["serve", "-c", "/etc/jitgate/jitgate.yaml"]']);
    expect(text).toContain('JITGATE_CONFIG=/etc/jitgate/jitgate.yaml');
    const pkg = JSON.parse(await readFile(root('package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.build).toBe('tsc -p tsconfig.build.json');
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

describe('deploy/k8s/sidecar.yaml', () => {
  type Doc = { kind: string; metadata: { name: string }; data?: Record<string, string>; spec?: any };
  let docs: Doc[];
  let config: Config;
  let jitgate: any;
  let pod: any;

  beforeAll(async () => {
    const text = await readFile(root('deploy/k8s/sidecar.yaml'), 'utf8');
    const parsed = parseAllDocuments(text);
    for (const d of parsed) expect(d.errors).toEqual([]);
    docs = parsed.map((d) => d.toJS() as Doc).filter((d) => d !== null);
    const cm = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'orders-jitgate')!;
    config = parseConfigText(cm.data!['jitgate.yaml']!, '/etc/jitgate/jitgate.yaml');
    pod = docs.find((d) => d.kind === 'Deployment')!.spec.template.spec;
    jitgate = pod.containers.find((c: { name: string }) => c.name === 'jitgate');
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
    const covered = (file: string) => mounts.some((m) => file === m.mountPath || file.startsWith(`${m.mountPath}/`));
    const files = [
      '/etc/jitgate/jitgate.yaml',
      ...config.issuers.flatMap((i) => (i.jwks_file === undefined ? [] : [i.jwks_file])),
      config.admin.token_file!,
      config.revocation.journal!,
    ];
    expect(files.filter((f) => !covered(f))).toEqual([]);
    const state = mounts.find((m) => config.revocation.journal!.startsWith(`${m.mountPath}/`))!;
    expect(state.readOnly).not.toBe(true);
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
