/**
 * The `jitgate` command: a table of subcommands, each a module loaded only when it runs and exporting
 * `run(argv): Promise<number>` (the exit code). Exit 2 means a usage error, as with most Unix tools.
 *
 * @module
 */
// First: SIGUSR1 and SIGHUP taken from node's defaults (early-signals.ts: the inspector, death),
// then libuv's thread pool sized before any module can start it.
import '../early-signals.ts';
import './init-thread-pool.ts';
import { parseArgs } from 'node:util';

// A reader of stdout or stderr that went away (a log shipper that died, `2>&1 | head`) makes the next
// write fail with EPIPE, raised as an 'error' on process.stdout/stderr. Unheard, it ended a serving gate
// that was only saying on stderr that its log destination had failed (a review: the gate exited 1). Such
// lines are lost; the gate serves on, and the destination's own failures are counted (logger.ts).
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});

/** What every command module exports. */
export interface CommandModule {
  run(argv: string[]): Promise<number>;
}

interface Command {
  /** Relative to this file. */
  readonly module: string;
  readonly summary: string;
}

// Specifiers are strings rather than `import('./keys.ts')` literals so that commands not built yet do not fail
// the typecheck, and a missing one is reported as unavailable instead of crashing. tsc's
// rewriteRelativeImportExtensions still maps `.ts` to `.js` at run time in the dist build.
// A Map, not an object literal: `jitgate constructor` must be an unknown command.
const COMMANDS: ReadonlyMap<string, Command> = new Map([
  ['serve', { module: './serve.ts', summary: 'run the gate from a config file (proxy, ext_authz, admin)' }],
  ['check-config', { module: './check-config.ts', summary: 'validate a config file without starting anything' }],
  ['keys', { module: './keys.ts', summary: 'generate a development key pair and its JWKS' }],
  ['mint', { module: './mint.ts', summary: 'sign a grant token from command-line flags' }],
  ['demo', { module: './demo.ts', summary: 'run the gate and a demo backend with dev keys; print curl commands' }],
  ['dpop-proof', { module: './dpop-proof.ts', summary: 'make a DPoP proof (RFC 9449) for one request' }],
  ['bench', { module: './bench.ts', summary: 'load a running gate with minted tokens and check every answer' }],
  ['status-list', { module: './status-list.ts', summary: 'build and sign a Token Status List (draft-ietf-oauth-status-list)' }],
  ['audit', { module: './audit.ts', summary: 'audit verify FILE... [--jwks F]: check the audit log hash chain' }],
  ['revoke', { module: './revoke.ts', summary: 'revoke a token, task or subject through a gate or straight into Redis' }],
]);

const HELP_NAMES: ReadonlySet<string> = new Set(['help', '--help', '-h']);

function usage(): string {
  const width = Math.max(...[...COMMANDS.keys()].map((n) => n.length), 'help [COMMAND]'.length) + 2;
  const lines = [...COMMANDS].map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`);
  lines.push(`  ${'help [COMMAND]'.padEnd(width)}show this help, or the help of one command`);
  return `Usage: jitgate <command> [options]

Commands:
${lines.join('\n')}

Run "jitgate <command> --help" for the options of a command.
`;
}

/** Runs one command line (without the node and script arguments) and returns the exit code. */
async function main(argv: readonly string[]): Promise<number> {
  const first = argv.findIndex((arg) => !arg.startsWith('-'));
  const globalArgs = first === -1 ? argv : argv.slice(0, first);
  let help: boolean | undefined;
  try {
    ({ help } = parseArgs({
      args: [...globalArgs],
      strict: true,
      allowPositionals: false,
      options: { help: { type: 'boolean', short: 'h' } },
    }).values);
  } catch (err) {
    process.stderr.write(`jitgate: ${(err as Error).message}\n\n${usage()}`);
    return 2;
  }
  const name = first === -1 ? undefined : argv[first]!;
  const rest = first === -1 ? [] : argv.slice(first + 1);

  if (help === true || name === 'help') {
    const topic = name === 'help' ? rest : name === undefined ? [] : [name];
    if (topic.length === 0) {
      process.stdout.write(usage());
      return 0;
    }
    if (topic.length > 1 || HELP_NAMES.has(topic[0]!)) {
      process.stderr.write(`jitgate: help takes one command name\n\n${usage()}`);
      return 2;
    }
    return dispatch(topic[0]!, ['--help']);
  }
  if (name === undefined) {
    process.stderr.write(usage());
    return 2;
  }
  return dispatch(name, rest);
}

async function dispatch(name: string, argv: string[]): Promise<number> {
  const command = COMMANDS.get(name);
  if (command === undefined) {
    process.stderr.write(`jitgate: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  let mod: Partial<CommandModule>;
  try {
    mod = (await import(command.module)) as Partial<CommandModule>;
  } catch (err) {
    if (isMissingModule(err, command.module)) {
      process.stderr.write(`jitgate: command "${name}" is not available in this build\n`);
      return 2;
    }
    throw err;
  }
  if (typeof mod.run !== 'function') throw new TypeError(`${command.module} does not export run(argv)`);
  return mod.run(argv);
}

/**
 * True only when the command's own file is missing. A module that exists but imports something missing is a
 * broken build, and that error must surface unchanged.
 */
function isMissingModule(err: unknown, specifier: string): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, url } = err as { code?: unknown; url?: unknown };
  if (code !== 'ERR_MODULE_NOT_FOUND' || typeof url !== 'string') return false;
  // In the dist build the file is `.js`; compare without the extension.
  const stem = (href: string): string => href.replace(/\.(?:ts|js)$/, '');
  return stem(url) === stem(new URL(specifier, import.meta.url).href);
}

// Set exitCode rather than calling process.exit(): stdout may still be flushing into a pipe.
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`jitgate: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
