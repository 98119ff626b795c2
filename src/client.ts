#!/usr/bin/env node
/** The `runbook` CLI. Exit codes: 0 ok, 1 run failed/rejected/rolled back/cancelled, 2 bad usage or input, 3 target held by another run. */
import { Command, Option } from 'commander';
import { ConfigError } from './config.js';
import { InputError } from './catalog/errors.js';
import { CommandContext, identity, type GlobalOptions } from './cli/context.js';
import { decideCommand } from './cli/decide.js';
import { describeCommand, listCommand } from './cli/describe.js';
import { CliError, ExitCode } from './cli/errors.js';
import { cancelCommand, lsCommand, statusCommand, watchCommand } from './cli/inspect.js';
import { startCommand } from './cli/start.js';

const program = new Command('runbook')
  .description('Run risky production runbooks as durable Temporal workflows')
  .addOption(new Option('--address <host:port>', 'Temporal frontend').env('TEMPORAL_ADDRESS'))
  .option('--namespace <name>', 'Temporal namespace (default: TEMPORAL_NAMESPACE, the profile, the config, else "default")')
  .addOption(
    new Option('--profile <name>', 'Temporal client config profile (TLS, mTLS, API key), as the temporal CLI reads it').env(
      'TEMPORAL_PROFILE',
    ),
  )
  .addOption(new Option('--config <file>', 'environments config').env('RUNBOOK_CONFIG'))
  .option('--json', 'machine-readable output')
  .showHelpAfterError()
  .exitOverride();

let exitCode: number = ExitCode.ok;
const collect = (value: string, previous: string[] = []) => [...previous, value];

function action<A extends unknown[]>(run: (ctx: CommandContext, ...args: A) => Promise<number>) {
  return async (...args: A) => {
    const ctx = new CommandContext(program.opts<GlobalOptions>());
    try {
      exitCode = await run(ctx, ...args);
    } finally {
      await ctx.close();
    }
  };
}

program
  .command('dev')
  .description('start the local stack (Temporal + UI, AWS emulator, PostgreSQL), seed the sandbox and run a worker')
  .option('--port <port>', 'Temporal frontend port', '7233')
  .option('--ui-port <port>', 'Temporal UI port', '8233')
  .action(action(async (ctx, options) => (await import('./cli/dev.js')).devCommand(ctx, options)));

program
  .command('worker')
  .description('run a worker for the runbooks task queue')
  .addOption(new Option('--metrics <host:port>', 'serve Prometheus metrics on http://<host:port>/metrics').env('RUNBOOK_METRICS'))
  .action(action(async (ctx, options) => (await import('./cli/worker.js')).workerCommand(ctx, options)));

program
  .command('list')
  .description('list the runbooks')
  .action(action((ctx) => listCommand(ctx)));

program
  .command('describe <runbook>')
  .description("a runbook's inputs, steps and checkpoints")
  .option('--env <env>', 'show the defaults this environment gives')
  .action(action((ctx, name: string, options: { env?: string }) => describeCommand(ctx, name, options)));

program
  .command('start <runbook>')
  .description('validate the inputs and start a run')
  .requiredOption('--env <env>', 'environment from the config')
  .option('--set <key=value>', 'an input (repeatable; dotted keys, JSON values)', collect)
  .option('--input <file.json>', 'inputs from a JSON file')
  .option('--dry-run', 'run the read-only steps, record what the others would do')
  .option('--wait', 'wait for the end, or for a checkpoint')
  .option('--as <user>', 'who starts the run (default RUNBOOK_USER or the OS user; where starts are signed, the key decides)')
  .option(
    '--key <file>',
    'private key to sign with where the environment lists signers (default RUNBOOK_SIGNING_KEY, else the first key in ssh-agent)',
  )
  .action(action((ctx, name: string, options) => startCommand(ctx, name, options)));

program
  .command('status <workflowId>')
  .description('current step, steps with timings, pending checkpoint, decisions, result')
  .action(action((ctx, id: string) => statusCommand(ctx, id)));

program
  .command('approve <workflowId>')
  .description('approve the checkpoint the run waits at')
  .option('--checkpoint <name>', 'the checkpoint you mean to approve (required without a terminal; refused if the run waits elsewhere)')
  .option('--comment <text>')
  .option('--as <user>', "who approves (default RUNBOOK_USER or the OS user; where decisions are signed, must be the key's signer)")
  .option(
    '--key <file>',
    'private key to sign with where the environment lists signers (default RUNBOOK_SIGNING_KEY, else the first key in ssh-agent)',
  )
  .option('--yes', 'do not ask for confirmation on a terminal')
  .action(action((ctx, id: string, options) => decideCommand(ctx, id, 'approved', options)));

program
  .command('reject <workflowId>')
  .description('reject the checkpoint the run waits at; compensation follows')
  .option('--checkpoint <name>')
  .requiredOption('--reason <text>')
  .option('--as <user>', "who rejects (default RUNBOOK_USER or the OS user; where decisions are signed, must be the key's signer)")
  .option(
    '--key <file>',
    'private key to sign with where the environment lists signers (default RUNBOOK_SIGNING_KEY, else the first key in ssh-agent)',
  )
  .option('--yes', 'do not ask for confirmation on a terminal')
  .action(action((ctx, id: string, options) => decideCommand(ctx, id, 'rejected', options)));

program
  .command('cancel <workflowId>')
  .description('cancel a run; compensation runs')
  .option('--wait', 'wait until compensation has finished')
  .option('--reason <text>', 'why the run is cancelled (recorded with the run)')
  .option('--as <user>', 'who cancels (default RUNBOOK_USER or the OS user)')
  .action(action((ctx, id: string, options) => cancelCommand(ctx, id, options)));

program
  .command('ls')
  .description('runs, newest first')
  .option('--env <env>')
  .option('--runbook <runbook>')
  .option('--running', 'only runs still open')
  .option('--limit <n>', 'at most this many', '20')
  .action(action((ctx, options) => lsCommand(ctx, options)));

program
  .command('watch <workflowId>')
  .description('follow a run step by step until it ends or waits at a checkpoint')
  .action(action((ctx, id: string) => watchCommand(ctx, id)));

program
  .command('whoami')
  .description('the identity decisions are recorded under')
  .action(async () => console.log(identity()));

try {
  await program.parseAsync();
} catch (err) {
  exitCode = reportError(err);
}
process.exitCode = exitCode;

function reportError(err: unknown): number {
  const commanderCode = (err as { code?: string }).code;
  if (commanderCode?.startsWith('commander.')) {
    return commanderCode === 'commander.helpDisplayed' || commanderCode === 'commander.version' ? ExitCode.ok : ExitCode.usage;
  }
  const message = err instanceof Error ? err.message : String(err);
  const json = program.opts<GlobalOptions>().json;
  const code =
    err instanceof CliError ? err.exitCode : err instanceof ConfigError || err instanceof InputError ? ExitCode.usage : ExitCode.runFailed;
  if (json) console.log(JSON.stringify({ error: message, exitCode: code }));
  console.error(`runbook: ${message}`);
  return code;
}
