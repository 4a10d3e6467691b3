/**
 * Starts the ext_authz listeners the config asks for (SPEC §7): the HTTP listener (Envoy's HTTP
 * authorization service, and forward-auth on the same port) and the gRPC listener (Envoy's
 * Authorization/Check and gRPC health). The runtime closes the returned listeners on shutdown.
 *
 * Startup refusals, each naming its key:
 * - `ext_authz.forward_auth` without `ext_authz.http`: forward-auth is served on the http listener
 *   and jitgate does not invent a listen address the operator never wrote.
 * - A forward-auth path that an Envoy check request could also carry (it lies under
 *   `path_prefix`, which is always so for the default empty prefix): otherwise a client request
 *   for that path, checked through Envoy, would be judged as forward-auth on headers the client
 *   chose.
 * - A trusted_proxies entry that is not an address or CIDR.
 */
import { StartupError } from '../../errors.ts';
import type { Listener, TransportContext } from '../context.ts';
import { startHttpService } from './http-service.ts';
import { extAuthzProblems } from './config-check.ts';
import { compileTrustedProxies } from './trusted-proxies.ts';
import { compileUpstreamHeaders } from './upstream-headers.ts';

/** The default of ext_authz.forward_auth.trusted_proxies (schema.ts), used for XFCC when forward-auth is off. */
const DEFAULT_XFCC_TRUSTED: readonly string[] = ['127.0.0.1/32', '::1/128'];

export async function startExtAuthz(ctx: TransportContext): Promise<Listener[]> {
  const x = ctx.config.ext_authz;
  const problems = extAuthzProblems(ctx.config);
  if (problems.length > 0) throw new StartupError(problems.join('\n'));
  const trusted = x.forward_auth === undefined ? undefined : compileTrustedProxies(x.forward_auth.trusted_proxies);
  // SPEC §11: XFCC is believed from forward-auth's trusted proxies, or loopback when forward-auth is not configured.
  const xfccTrusted = trusted ?? compileTrustedProxies(DEFAULT_XFCC_TRUSTED);
  const upstream = compileUpstreamHeaders(ctx.config, ctx.gate.policy.identity);

  const listeners: Listener[] = [];
  try {
    if (x.http !== undefined) {
      listeners.push(
        await startHttpService(ctx, {
          host: x.http.listen.host,
          port: x.http.listen.port,
          pathPrefix: x.http.path_prefix,
          upstream,
          forwardAuth: x.forward_auth === undefined || trusted === undefined ? undefined : { path: x.forward_auth.path, trusted },
          xfccTrusted,
        }),
      );
    }
    if (x.grpc !== undefined) {
      // Loaded only when configured: gRPC reflection brings grpc-js and proto-loader, which the proxy never needs.
      const { startGrpcService } = await import('./grpc-service.ts');
      listeners.push(await startGrpcService(ctx, { host: x.grpc.listen.host, port: x.grpc.listen.port, upstream, reflection: x.grpc.reflection }));
    }
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close(0)));
    throw err;
  }
  for (const l of listeners) ctx.logger.info({ listener: l.name, host: l.host, port: l.port }, 'ext_authz listening');
  return listeners;
}
