# syntax=docker/dockerfile:1
# jitgate container image: an authorization sidecar in front of a legacy HTTP backend.
#
#   docker build -t jitgate .
#   docker run --rm -p 8080:8080 -v "$PWD/my-config:/etc/jitgate:ro" jitgate
#
# The config is read from /etc/jitgate/jitgate.yaml (JITGATE_CONFIG); relative paths in it (jwks_file,
# revocation.file, admin.token_file) resolve against /etc/jitgate. Writable state (revocation.journal) needs a
# volume, e.g. /var/lib/jitgate. See docs/operations.md and deploy/k8s/sidecar.yaml.

# ---- build: TypeScript → dist/ ----------------------------------------------------------------------------------
FROM node:24-slim AS build
WORKDIR /app
# --ignore-scripts: the only install scripts are the `node` devDependency's preinstall (it downloads a second
# Node 24 binary; the image already has one) and protobufjs's version warning. tsc needs neither.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies + dist/ + protos, non-root -------------------------------------------------
FROM node:24-slim AS runtime
ENV NODE_ENV=production \
    JITGATE_CONFIG=/etc/jitgate/jitgate.yaml
# A gate that mainly answers Envoy's gRPC Checks: run it with -e NODE_OPTIONS=--max-semi-space-size=8 (a third of the
# default's gRPC p99; costs a proxying gate ~2 µs of GC per request, so not set here). docs/deploying.md, "Behind Envoy".
WORKDIR /app
# --omit=dev drops typescript, vitest and the `node` package (a devDependency).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# gRPC ext_authz protos, loaded at startup relative to the package root (src/transports/ext-authz/protos.ts).
COPY proto ./proto
# A numeric UID so Kubernetes' runAsNonRoot can verify it; owns only the state directory.
RUN groupadd --system --gid 10001 jitgate \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin jitgate \
 && mkdir -p /etc/jitgate /var/lib/jitgate \
 && chown 10001:10001 /var/lib/jitgate
USER 10001:10001

# 8080: traffic (listen.port). 9901: admin (/healthz /readyz /metrics /revocations); admin.listen.host defaults
# to 127.0.0.1, which is enough for this HEALTHCHECK; bind it wider only for probes from outside the container.
EXPOSE 8080 9901
# No curl in slim images: Node's fetch does the probe. Any answer other than 200 (or no answer) is unhealthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9901/healthz',{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]

# --disable-sigusr1: SIGUSR1 never opens node's inspector (127.0.0.1:9229) in the gate; SIGHUP reopens logs.
ENTRYPOINT ["node", "--disable-sigusr1", "dist/cli/index.js"]
CMD ["serve", "-c", "/etc/jitgate/jitgate.yaml"]
