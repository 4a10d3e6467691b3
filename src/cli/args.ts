/**
 * The argv handling every subcommand shares: strict flags only, `-h/--help` prints the usage to stdout.
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';

const HELP = { help: { type: 'boolean', short: 'h' } } as const;

type Values<O extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ args: string[]; strict: true; allowPositionals: false; options: O & typeof HELP }>
>['values'];

/**
 * The parsed flags, or the exit code to return: 0 after printing `usage` for `--help`, else what
 * `usageError` (the command's own wording) returns for parseArgs' complaint.
 */
export function parseCommand<O extends ParseArgsOptionsConfig>(
  argv: string[],
  options: O,
  usage: string,
  usageError: (message: string) => number,
): Values<O> | number {
  let values: Values<O>;
  try {
    const parsed = parseArgs({ args: argv, strict: true, allowPositionals: false, options: { ...options, ...HELP }, tokens: true });
    values = parsed.values as Values<O>;
    // parseArgs keeps the last of a repeated single-valued flag: `revoke --jti a --jti b` revoked only b,
    // `audit verify --jwks A --jwks B` checked against B alone (a probe). Repeating one is refused; a
    // switch said twice (`--help --help`, `--json --json`) means what it says once.
    const seen = new Set<string>();
    for (const t of parsed.tokens) {
      if (t.kind !== 'option') continue;
      const spec = options[t.name] as { type?: string; multiple?: boolean } | undefined;
      if (spec?.type !== 'string' || spec.multiple === true) continue;
      if (seen.has(t.name)) return usageError(`--${t.name} given more than once`);
      seen.add(t.name);
    }
  } catch (err) {
    return usageError((err as Error).message);
  }
  // Values<O> stays unresolved while O is generic, so TypeScript cannot see the `help` it always has.
  if ((values as { help?: boolean }).help === true) {
    process.stdout.write(usage);
    return 0;
  }
  return values;
}

/** The usage error every command prints (`jitgate keys: …`, then where the help is); exit code 2. */
export function commandUsageError(command: string, message: string): number {
  process.stderr.write(`jitgate ${command}: ${message}\nRun "jitgate ${command} --help" for usage.\n`);
  return 2;
}
