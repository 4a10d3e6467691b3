/**
 * The grant `jitgate bench` mints for `--path`: the path itself and everything below it, as SPEC §1 patterns.
 *
 * @module
 */

/** The grant's path patterns for `path`. A `*` in it stays a wildcard of the grant (SPEC §1). */
export function grantPaths(path: string): string[] {
  return [path, `${path.replace(/\/$/, '')}/**`];
}
