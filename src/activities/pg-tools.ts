/**
 * The PostgreSQL client programs (pg_dump, pg_restore) as an activity runs
 * them: found once, given the connection through the environment, heartbeating
 * while they work, stopped when the activity is cancelled, and their failures
 * sorted into worth-retrying or not.
 */
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { execa } from 'execa';
import { access, constants, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export type PgTool = 'pg_dump' | 'pg_restore' | 'psql';

/** Heartbeats while a program runs: often enough for a short heartbeat timeout, rarely enough to cost nothing. */
const HEARTBEAT_EVERY_MS = 2_000;
/** How much of a failed program's output goes into the error: the end, where it says why. */
const OUTPUT_TAIL_CHARS = 2_000;
/** Failures that another attempt would meet again. */
const PERMANENT =
  /server version mismatch|aborting because of server version|permission denied|does not exist|password authentication failed|no pg_hba\.conf entry|must be owner|syntax error|invalid input/i;

/**
 * Where the programs are: the worker's `pgBinDir`, else `PG_BIN`, else the
 * newest /usr/lib/postgresql/<version>/bin that has them, else PATH. pg_dump
 * must be at least as new as the server it dumps, which is why an explicit
 * folder wins over whatever PATH offers.
 */
export function pgToolFinder(pgBinDir?: string): (tool: PgTool) => Promise<string> {
  let dir: Promise<string | undefined> | undefined;
  return async (tool) => {
    dir ??= findBinDir(pgBinDir);
    const found = await dir;
    return found ? join(found, tool) : tool;
  };
}

async function findBinDir(pgBinDir: string | undefined): Promise<string | undefined> {
  for (const candidate of [pgBinDir, process.env.PG_BIN])
    if (candidate && (await isExecutable(join(candidate, 'pg_dump')))) return candidate;
  const versions = await readdir('/usr/lib/postgresql').catch(() => [] as string[]);
  for (const version of versions.sort((a, b) => Number(b) - Number(a))) {
    const dir = join('/usr/lib/postgresql', version, 'bin');
    if (await isExecutable(join(dir, 'pg_dump'))) return dir;
  }
  return undefined;
}

async function isExecutable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/** "15.8" from `pg_dump --version`; a missing program fails for good, naming where it was looked for. */
export async function toolVersion(path: string): Promise<string> {
  const result = await execa(path, ['--version'], { reject: false });
  const version = /\(PostgreSQL\)\s+(\S+)/.exec(result.stdout)?.[1];
  if (result.exitCode !== 0 || !version) {
    throw ApplicationFailure.create({
      type: 'ToolMissing',
      message: `${path} does not run on this worker (${result.shortMessage ?? result.stderr}); install the PostgreSQL client or set PG_BIN`,
      nonRetryable: true,
    });
  }
  return version;
}

/**
 * Runs a program to the end, heartbeating `details()` meanwhile. The
 * connection (password included) travels in `env`, never in `args`.
 */
export async function runTool(
  path: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  what: string,
  details: () => unknown = () => undefined,
): Promise<void> {
  const context = Context.current();
  const child = execa(path, args, {
    env,
    extendEnv: false,
    stdin: 'ignore',
    all: true,
    reject: false,
    cancelSignal: context.cancellationSignal,
    forceKillAfterDelay: 5_000,
  });
  const beat = setInterval(() => context.heartbeat(details()), HEARTBEAT_EVERY_MS);
  try {
    const result = await child;
    if (result.isCanceled) throw new CancelledFailure(`${what}: cancelled`);
    if (result.exitCode === 0) return;
    const output = (result.all ?? '').trim().slice(-OUTPUT_TAIL_CHARS);
    const why = output || result.shortMessage || `exit code ${result.exitCode}`;
    throw ApplicationFailure.create({
      type: PERMANENT.test(why) ? 'ToolFailed' : 'ToolFailedTransiently',
      message: `${what}: ${why}`,
      nonRetryable: PERMANENT.test(why),
    });
  } finally {
    clearInterval(beat);
  }
}
