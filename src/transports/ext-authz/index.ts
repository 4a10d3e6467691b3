/**
 * Starts the ext_authz listeners the config asks for (SPEC §7). Placeholder until the
 * ext_authz transports land: with `ext_authz.http` or `.grpc` configured it refuses to start
 * rather than silently serving nothing.
 */
import { StartupError } from '../../errors.ts';
import type { Listener, TransportContext } from '../context.ts';

export async function startExtAuthz(ctx: TransportContext): Promise<Listener[]> {
  const x = ctx.config.ext_authz;
  if (x.http !== undefined || x.grpc !== undefined || x.forward_auth !== undefined) {
    throw new StartupError('ext_authz: not available in this build yet');
  }
  return [];
}
