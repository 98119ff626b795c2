/** Exit codes are a contract: scripts around the CLI depend on them. */
export const ExitCode = {
  ok: 0,
  /** The run failed, was rejected, rolled back or cancelled (with --wait). */
  runFailed: 1,
  /** Bad usage or invalid input; nothing was started. */
  usage: 2,
  /** A run of that runbook already holds that target. */
  conflict: 3,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.usage);
  }
}
