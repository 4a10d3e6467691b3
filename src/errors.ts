/**
 * Operator errors: bad config, a listener that cannot bind, a key file that cannot be read.
 * They stop startup with a message that names the key. Bad *tokens* are never errors — they are
 * Deny decisions (src/core/decision.ts); keeping the two apart is what makes fail-closed auditable.
 */
export class JitgateError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'JitgateError';
    this.code = code;
  }
}

/** The config file is unreadable or invalid. `problems` lists `key.path: what is wrong` lines. */
export class ConfigError extends JitgateError {
  readonly problems: readonly string[];
  constructor(file: string, problems: readonly string[], options?: ErrorOptions) {
    super('JITGATE_ERR_CONFIG', `invalid config ${file}:\n  ${problems.join('\n  ')}`, options);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Something needed at startup (keys, listeners, files) is not usable. */
export class StartupError extends JitgateError {
  constructor(message: string, options?: ErrorOptions) {
    super('JITGATE_ERR_STARTUP', message, options);
    this.name = 'StartupError';
  }
}
