/**
 * Every address a gate listens on, from its config: `key` names the config block (check-config's
 * messages), `name` the listener (its startup error and metrics label).
 */
import type { Config } from './schema.ts';

export interface ListenAddress {
  readonly key: 'listen' | 'admin.listen' | 'ext_authz.http.listen' | 'ext_authz.grpc.listen';
  readonly name: 'proxy' | 'admin' | 'ext_authz_http' | 'ext_authz_grpc';
  readonly host: string;
  readonly port: number;
}

/** `withAdmin` false: a cluster worker's, whose admin port is the primary's. */
export function listenAddresses(config: Config, withAdmin = true): ListenAddress[] {
  const x = config.ext_authz;
  const at = (key: ListenAddress['key'], name: ListenAddress['name'], l: { host: string; port: number }): ListenAddress => ({ key, name, host: l.host, port: l.port });
  return [
    at('listen', 'proxy', config.listen),
    ...(withAdmin ? [at('admin.listen', 'admin', config.admin.listen)] : []),
    ...(x?.http === undefined ? [] : [at('ext_authz.http.listen', 'ext_authz_http', x.http.listen)]),
    ...(x?.grpc === undefined ? [] : [at('ext_authz.grpc.listen', 'ext_authz_grpc', x.grpc.listen)]),
  ];
}
