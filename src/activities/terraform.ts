/**
 * Terraform, as the seeds run it by hand: init, state rm, `plan -out`, a look
 * at the saved plan, `apply` of exactly that plan, outputs. General enough for
 * any runbook that changes infrastructure through Terraform (terraform-apply,
 * and bucket-swap and db-migration, which move a resource out of Terraform's
 * hands and back).
 *
 * Every command runs with TF_WORKSPACE set rather than after `workspace
 * select`, so two runs on one directory cannot switch each other's workspace.
 * Plans hold the values of every variable, secret ones too: they are saved in
 * a folder of their run (mode 0700, outside the Terraform directory) and
 * discarded once applied or abandoned. Activities return summaries
 * (addresses, actions, non-sensitive outputs, the plan's hash), never the
 * plan's JSON or a sensitive value, and errors quote Terraform's diagnostics,
 * which mask sensitive values.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { execa } from 'execa';
import type { AwsConnection } from '../config.js';
import { FailureType } from '../messages.js';
import { findOnPath, isExecutable } from '../executables.js';
import { isWithin, planProblems, type PlanRules, type PlanSummary } from '../terraform-plan.js';
import { abortable, awsFailure, clientFactory, type AwsDeps } from './aws.js';
import type { SecretResolver } from './secrets.js';

export { isWithin, planProblems, type PlannedChange, type PlanSummary } from '../terraform-plan.js';

/** The last tag of Terraform that `go install` accepts (later ones carry `replace` directives). */
export const TERRAFORM_MODULE = 'github.com/hashicorp/terraform@v1.5.7';
const projectToolsDir = fileURLToPath(new URL('../../../.tools', import.meta.url));

export interface TerraformDeps extends AwsDeps {
  /** Path of the terraform binary; default: see `resolveTerraform`. */
  terraformBin?: () => Promise<string>;
  /** Where runs keep their plans and downloaded var files; default: `<tmpdir>/runbook-terraform`. */
  workRoot?: string;
  /** Resolves the references of secret variables; without it, plans refuse secret variables. */
  secrets?: SecretResolver;
}

/** A working directory and the workspace commands run in. */
export interface TerraformDir {
  dir: string;
  /** Default: `default`. */
  workspace?: string;
  /** A Terraform CLI configuration for this environment (TF_CLI_CONFIG_FILE), e.g. one naming a provider mirror. */
  cliConfig?: string;
}

/** Inputs of a plan besides the configuration: var files and variables. */
export interface PlanInputs {
  /** Paths of var files to pass with -var-file (from `terraformFetchVarFiles`). */
  varFiles?: string[];
  /** Non-secret variables, passed with -var (non-strings as JSON, which HCL reads). */
  vars?: Record<string, unknown>;
  /** Secret variables: variable name -> secret reference, resolved here and passed as TF_VAR_<name> to `plan` only. */
  secretVars?: Record<string, string>;
  /** For resolving secretsmanager: references. */
  aws?: AwsConnection;
}

/** A saved plan: where it is, its hash, and what it does. */
export interface SavedPlan extends PlanSummary {
  /** Absolute path, in the run's own folder. */
  planFile: string;
  sha256: string;
}

export interface PlanGuard extends TerraformDir, PlanRules {
  planFile: string;
}

export function createTerraformActivities(deps: TerraformDeps = {}) {
  let bin: Promise<string> | undefined;
  const terraform: Terraform = (where, args, env) => {
    bin ??= (deps.terraformBin ?? (() => resolveTerraform(projectToolsDir)))();
    bin.catch(() => (bin = undefined)); // a failed build is tried again by the next attempt
    return bin.then((path) => runTerraform(path, where, args, env));
  };
  const workRoot = deps.workRoot ?? join(tmpdir(), 'runbook-terraform');
  const s3 = (aws: AwsConnection) => clientFactory(deps)(aws).s3;

  /** The calling run's private folder: the same for every attempt of the run, on this machine. */
  async function runFolder(): Promise<string> {
    const execution = Context.current().info.workflowExecution;
    if (!execution)
      throw ApplicationFailure.create({
        type: 'NoRun',
        message: 'Terraform plans are kept per workflow run; this activity ran outside one',
        nonRetryable: true,
      });
    const { workflowId, runId } = execution;
    const folder = join(workRoot, workflowId.replace(/[^A-Za-z0-9._-]/g, '_'), runId);
    await mkdir(folder, { recursive: true, mode: 0o700 });
    return folder;
  }

  /** A plan named by a caller lives in the run's folder; a path is accepted only when it is inside the folder. */
  async function planPath(planFile: string): Promise<string> {
    const folder = await runFolder();
    const path = resolve(folder, planFile);
    if (relative(folder, path).startsWith('..') || dirname(path) !== folder) {
      throw invalidTerraformInput('planFile', `${planFile} is not a plan of this run (plans live in ${folder})`);
    }
    return path;
  }

  async function requirePlan(planFile: string): Promise<string> {
    const path = await planPath(planFile);
    if (!existsSync(path)) {
      throw ApplicationFailure.create({
        type: 'PlanMissing',
        message: `the saved plan ${path} is gone (discarded, or the run moved to another worker machine): nothing applied; run again`,
        nonRetryable: true,
      });
    }
    return path;
  }

  return {
    /** `terraform init` with the committed lock file (never rewritten by a runbook). */
    async terraformInit(where: TerraformDir): Promise<{ tool: string }> {
      refuseMissingDir(where.dir);
      await terraform({ dir: where.dir, ...cli(where) }, ['init', '-no-color', '-input=false', '-lockfile=readonly']);
      const { stdout } = await terraform({ dir: where.dir, ...cli(where) }, ['version', '-json']);
      const path = await bin!;
      return {
        tool: `${/tofu/i.test(path) ? 'OpenTofu' : 'Terraform'} v${(JSON.parse(stdout) as { terraform_version: string }).terraform_version} (${path})`,
      };
    },

    /**
     * `terraform workspace select`, for callers that want the directory's
     * selection changed. Commands here do not need it (they set TF_WORKSPACE).
     */
    async terraformSelectWorkspace(where: Required<Omit<TerraformDir, 'cliConfig'>> & TerraformDir): Promise<void> {
      await requireWorkspace(terraform, where);
      await terraform({ dir: where.dir, ...cli(where) }, ['workspace', 'select', where.workspace]);
    },

    /**
     * Refuses a workspace that does not exist (with TF_WORKSPACE set, Terraform
     * would silently create it and plan everything anew), then lists the state.
     */
    async terraformStateList(where: TerraformDir): Promise<string[]> {
      await requireWorkspace(terraform, where);
      return stateList(terraform, where);
    },

    /** `terraform state rm`; an address no longer in the state was removed by an earlier attempt. */
    async terraformStateRm(args: TerraformDir & { address: string }): Promise<{ removed: boolean }> {
      if (!(await stateList(terraform, args)).some((a) => isWithin(a, args.address))) return { removed: false };
      await terraform(args, ['state', 'rm', args.address]);
      return { removed: true };
    },

    /**
     * The addresses in the workspace's state of resources of `type` whose
     * `attribute` is `value` (say, the aws_db_instance whose identifier is the
     * database to move): how a runbook finds that Terraform manages what it is
     * about to replace. Reads the raw state (`state pull`, no provider needed);
     * only addresses leave this activity, never the state's values.
     */
    async terraformFindManaged(args: TerraformDir & { type: string; attribute: string; value: string }): Promise<{ addresses: string[] }> {
      refuseMissingDir(args.dir);
      await requireWorkspace(terraform, args);
      const { stdout } = await terraform(args, ['state', 'pull']);
      const state = JSON.parse(stdout || '{}') as RawState;
      const addresses = (state.resources ?? [])
        .filter((r) => r.mode === 'managed' && r.type === args.type)
        .flatMap((r) =>
          (r.instances ?? []).filter((i) => i.attributes?.[args.attribute] === args.value).map((i) => address(r, i.index_key)),
        );
      return { addresses };
    },

    /**
     * Var files into the run's folder: a local one must lie inside the
     * Terraform directory; an `s3://bucket/key` one is downloaded. Returns the
     * paths to plan with, in the order given (later files win, as with -var-file).
     */
    async terraformFetchVarFiles(args: { dir: string; varFiles: string[]; aws: AwsConnection }): Promise<{ paths: string[] }> {
      const folder = await runFolder();
      const paths: string[] = [];
      for (const [i, varFile] of args.varFiles.entries()) {
        const field = `varFiles.${i}`;
        if (varFile.startsWith('s3://')) {
          const match = /^s3:\/\/([^/]+)\/(.*[^/])$/.exec(varFile);
          if (!match) throw invalidTerraformInput(field, `'${varFile}' names no object (s3://bucket/key)`);
          const [, bucket, key] = match as unknown as [string, string, string];
          const path = join(folder, `var-file-${i}${key.endsWith('.json') ? '.tfvars.json' : '.tfvars'}`);
          await download(s3(args.aws), bucket, key, path, field);
          paths.push(path);
        } else {
          const path = resolve(args.dir, varFile);
          if (isAbsolute(varFile) || relative(args.dir, path).startsWith('..'))
            throw invalidTerraformInput(field, `'${varFile}' must be a path inside the Terraform directory, or s3://bucket/key`);
          if (!existsSync(path)) throw invalidTerraformInput(field, `no file ${varFile} in ${args.dir}`);
          paths.push(path);
        }
      }
      return { paths };
    },

    /**
     * `plan -out` into the run's folder (optionally targeted, or a destroy
     * plan), to be reviewed and then applied as is. Secret variables reach
     * Terraform only through this process's environment.
     */
    async terraformPlan(args: TerraformDir & PlanInputs & { targets?: string[]; planFile: string; destroy?: boolean }): Promise<SavedPlan> {
      const planFile = await planPath(args.planFile);
      const secretEnv: Record<string, string> = {};
      for (const [name, ref] of Object.entries(args.secretVars ?? {})) {
        if (!deps.secrets || !args.aws)
          throw invalidTerraformInput(
            `secretVars.${name}`,
            'this worker resolves no secret variables (no secret resolver or AWS connection)',
          );
        secretEnv[`TF_VAR_${name}`] = await deps.secrets(ref, { aws: args.aws }, `secretVars.${name}`);
      }
      await terraform(
        args,
        [
          'plan',
          '-no-color',
          '-input=false',
          '-lock-timeout=60s',
          ...(args.destroy ? ['-destroy'] : []),
          ...(args.targets ?? []).map((t) => `-target=${t}`),
          ...(args.varFiles ?? []).map((f) => `-var-file=${f}`),
          ...Object.entries(args.vars ?? {}).map(
            ([name, value]) => `-var=${name}=${typeof value === 'string' ? value : JSON.stringify(value)}`,
          ),
          `-out=${planFile}`,
        ],
        secretEnv,
      );
      await chmod(planFile, 0o600);
      return { planFile, sha256: await sha256(planFile), ...(await readPlan(terraform, args, planFile)) };
    },

    async terraformShowPlan(args: TerraformDir & { planFile: string }): Promise<PlanSummary> {
      return readPlan(terraform, args, await requirePlan(args.planFile));
    },

    /**
     * The plan guard (src/terraform-plan.ts) as a step of its own: reads the
     * saved plan and refuses it (non-retryable `PlanRefused`, naming the
     * addresses) when the rules do not accept it.
     */
    async terraformGuardPlan(guard: PlanGuard): Promise<PlanSummary> {
      const planFile = await requirePlan(guard.planFile);
      const plan = await readPlan(terraform, guard, planFile);
      const problems = planProblems(plan, guard);
      if (problems.length) {
        throw ApplicationFailure.create({
          type: 'PlanRefused',
          message: `the plan ${guard.planFile} was refused, nothing applied: ${problems.join('; ')}`,
          nonRetryable: true,
        });
      }
      return plan;
    },

    /**
     * Applies the saved plan and nothing else: with `sha256`, only the very
     * file that was reviewed. A plan Terraform calls stale was either applied
     * by an earlier attempt of this activity whose result was lost (the state
     * then holds every address the plan creates and none it destroys) or
     * overtaken by another change (refused: run again).
     */
    async terraformApply(args: TerraformDir & { planFile: string; sha256?: string }): Promise<{ alreadyApplied: boolean }> {
      const planFile = await requirePlan(args.planFile);
      if (args.sha256 && (await sha256(planFile)) !== args.sha256) {
        throw ApplicationFailure.create({
          type: 'PlanChanged',
          message: `the saved plan ${planFile} is not the one reviewed (its sha256 differs): nothing applied; run again`,
          nonRetryable: true,
        });
      }
      // Marks that this run began applying: only then may a stale plan be this run's own, applied by a lost attempt.
      const applying = `${planFile}.applying`;
      const retried = existsSync(applying);
      await writeFile(applying, new Date().toISOString(), { mode: 0o600 });
      try {
        await terraform(args, ['apply', '-no-color', '-input=false', '-lock-timeout=60s', planFile]);
        return { alreadyApplied: false };
      } catch (err) {
        if (!(err instanceof ApplicationFailure) || err.type === 'TerraformLocked') throw err;
        // Read only now: `show` loads the providers, which takes seconds.
        if (!/Saved plan is stale/.test(err.message))
          throw await partlyApplied(terraform, args, await readPlan(terraform, args, planFile), err);
        if (retried) {
          // A consumed plan: an earlier attempt's apply ran (to the end, or until its worker died and took it along).
          const plan = await readPlan(terraform, args, planFile);
          const state = await stateList(terraform, args);
          if (planVisibleInState(plan, state)) return { alreadyApplied: true };
          const done = doneInState(plan, state);
          if (done.length) {
            throw ApplicationFailure.create({
              type: 'ApplyInterrupted',
              message: `an earlier attempt's apply was interrupted: the state shows ${describeDone(done)} done, the rest of the plan not; nothing was undone and nothing applied twice (see terraform state list); run again for a plan of the rest`,
              nonRetryable: true,
            });
          }
        }
        throw ApplicationFailure.create({
          type: 'PlanStale',
          message: `the plan is stale: the ${args.workspace ?? 'default'} state changed since it was made, nothing applied; run again for a fresh plan`,
          nonRetryable: true,
        });
      }
    },

    /** Deletes a saved plan (it holds variable values, secret ones too), and the run's folder once empty. Idempotent. */
    async terraformDiscardPlan(args: { planFile: string }): Promise<{ removed: boolean }> {
      const planFile = await planPath(args.planFile);
      const removed = existsSync(planFile);
      await rm(planFile, { force: true });
      await rm(`${planFile}.applying`, { force: true });
      const folder = dirname(planFile);
      for (const file of readdirSync(folder)) if (file.startsWith('var-file-')) await rm(join(folder, file), { force: true });
      // The run's folder, then its workflow's folder, once empty (a folder still in use is not empty).
      await rmdir(folder)
        .then(() => rmdir(dirname(folder)))
        .catch(() => undefined);
      return { removed };
    },

    /** Non-sensitive outputs by name; sensitive ones are only named (activities that need them read them themselves). */
    async terraformOutputs(where: TerraformDir): Promise<{ values: Record<string, unknown>; sensitive: string[] }> {
      const { stdout } = await terraform(where, ['output', '-no-color', '-json']);
      const outputs = JSON.parse(stdout || '{}') as Record<string, { sensitive: boolean; value: unknown }>;
      const values: Record<string, unknown> = {};
      const sensitive: string[] = [];
      for (const [name, output] of Object.entries(outputs)) {
        if (output.sensitive) sensitive.push(name);
        else values[name] = output.value;
      }
      return { values, sensitive };
    },
  };
}

export type TerraformActivities = ReturnType<typeof createTerraformActivities>;

type Terraform = (where: TerraformDir, args: string[], env?: Record<string, string>) => Promise<{ stdout: string }>;

function cli(where: TerraformDir): Pick<TerraformDir, 'cliConfig'> {
  return where.cliConfig ? { cliConfig: where.cliConfig } : {};
}

/**
 * Whether a lost apply's work shows in the state: every address the plan
 * creates is there and none it destroys. A plan of updates alone cannot be
 * told from the state, so it never counts as applied (planning again is harmless).
 */
function planVisibleInState(plan: PlanSummary, state: string[]): boolean {
  const created = plan.changes.filter((c) => c.actions.includes('create')).map((c) => c.address);
  const destroyed = plan.changes.filter((c) => c.actions.includes('delete') && !c.actions.includes('create')).map((c) => c.address);
  if (!created.length && !destroyed.length) return false;
  return created.every((a) => state.includes(a)) && destroyed.every((a) => !state.includes(a));
}

/** The planned creates and destroys the state shows done (updates cannot be told from the state). */
function doneInState(plan: PlanSummary, state: string[]): PlanSummary['changes'] {
  return plan.changes.filter((c) =>
    c.actions.includes('create') ? state.includes(c.address) : c.actions.includes('delete') ? !state.includes(c.address) : false,
  );
}

function describeDone(done: PlanSummary['changes']): string {
  return done.map((c) => `${c.actions.join('+')} ${c.address}`).join(', ');
}

/** A failed apply, saying which planned changes the state shows done (nothing is undone automatically). */
async function partlyApplied(
  terraform: Terraform,
  where: TerraformDir,
  plan: PlanSummary,
  err: ApplicationFailure,
): Promise<ApplicationFailure> {
  const state = await stateList(terraform, where).catch(() => undefined);
  if (!state) return err;
  const done = doneInState(plan, state);
  const said = done.length ? `changed before the failure: ${describeDone(done)}` : 'no planned create or destroy shows in the state';
  return ApplicationFailure.create({
    type: 'ApplyFailed',
    message: `${err.message}; ${said}; nothing was undone (see terraform state list)`,
    nonRetryable: true,
    cause: err,
  });
}

/** The parts of a raw state (`terraform state pull`, format version 4) that name resources. */
interface RawState {
  resources?: {
    module?: string;
    mode: string;
    type: string;
    name: string;
    instances?: { index_key?: string | number; attributes?: Record<string, unknown> }[];
  }[];
}

function address(resource: NonNullable<RawState['resources']>[number], key: string | number | undefined): string {
  const index = key === undefined ? '' : `[${JSON.stringify(key)}]`;
  return `${resource.module ? `${resource.module}.` : ''}${resource.type}.${resource.name}${index}`;
}

async function sha256(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

async function download(client: S3Client, bucket: string, key: string, path: string, field: string): Promise<void> {
  try {
    const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), abortable());
    await pipeline(object.Body as Readable, createWriteStream(path, { mode: 0o600 }));
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'NoSuchKey' || name === 'NoSuchBucket') throw invalidTerraformInput(field, `no object s3://${bucket}/${key}`);
    throw awsFailure(err, `download s3://${bucket}/${key}`, field);
  }
}

interface PlanJson {
  resource_changes?: { address: string; change: { actions: string[] } }[];
  planned_values?: { outputs?: Record<string, { sensitive: boolean; value?: unknown }> };
}

async function readPlan(terraform: Terraform, where: TerraformDir, planFile: string): Promise<PlanSummary> {
  const { stdout } = await terraform(where, ['show', '-no-color', '-json', planFile]);
  const json = JSON.parse(stdout) as PlanJson;
  const outputs: Record<string, unknown> = {};
  for (const [name, output] of Object.entries(json.planned_values?.outputs ?? {})) {
    // An output absent from `value` is unknown until apply; a sensitive one is never carried.
    if (!output.sensitive && 'value' in output) outputs[name] = output.value;
  }
  return {
    changes: (json.resource_changes ?? [])
      .map((r) => ({ address: r.address, actions: r.change.actions }))
      .filter((c) => !c.actions.every((a) => a === 'no-op' || a === 'read')),
    outputs,
  };
}

async function stateList(terraform: Terraform, where: TerraformDir): Promise<string[]> {
  try {
    const { stdout } = await terraform(where, ['state', 'list']);
    return stdout
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean);
  } catch (err) {
    // A workspace nothing was ever applied in has no state yet: it manages nothing.
    if (err instanceof ApplicationFailure && /No state file was found/.test(err.message)) return [];
    throw err;
  }
}

async function requireWorkspace(terraform: Terraform, where: TerraformDir): Promise<void> {
  const workspace = where.workspace ?? 'default';
  const { stdout } = await terraform({ dir: where.dir, ...cli(where) }, ['workspace', 'list']);
  const known = stdout
    .split('\n')
    .map((line) => line.replace(/^\*/, '').trim())
    .filter(Boolean);
  if (!known.includes(workspace)) {
    throw invalidTerraformInput(
      'workspace',
      `no workspace '${workspace}' in ${where.dir} (it has: ${known.join(', ')}); workspaces are never created by a run`,
    );
  }
}

function refuseMissingDir(dir: string): void {
  if (!isAbsolute(dir))
    throw invalidTerraformInput('terraform.dir', `'${dir}' must be an absolute path (the worker's working directory is not yours)`);
  if (!existsSync(dir) || !readdirSync(dir).some((f) => f.endsWith('.tf') || f.endsWith('.tf.json'))) {
    throw invalidTerraformInput('terraform.dir', `${dir} holds no Terraform configuration`);
  }
}

function invalidTerraformInput(field: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.invalidInput, message: `${field}: ${message}`, nonRetryable: true });
}

/** A failed terraform command, with the end of what it said. */
export class TerraformError extends Error {}

/** Terraform waits this long for a clean stop on SIGINT (it saves state first) before it is killed. */
const STOP_GRACE_MS = 60_000;
const HEARTBEAT_EVERY_MS = 5_000;
const ERROR_LINES = 30;

/**
 * Runs one command, heartbeating while it runs; cancelling the activity
 * interrupts Terraform the way Ctrl-C does. Lock contention is retried by
 * Temporal; any other failure is not (re-running a failed plan or apply gives
 * the same answer), and the error quotes Terraform's own last lines.
 */
async function runTerraform(
  bin: string,
  where: TerraformDir,
  args: string[],
  extraEnv: Record<string, string> = {},
): Promise<{ stdout: string }> {
  const context = Context.current();
  const ticker = setInterval(() => context.heartbeat(), HEARTBEAT_EVERY_MS);
  const [command, commandArgs] = await tiedToWorker(bin, args);
  try {
    const result = await execa(command, commandArgs, {
      cwd: where.dir,
      env: {
        TF_IN_AUTOMATION: '1',
        TF_INPUT: '0',
        ...(where.workspace && args[0] !== 'workspace' ? { TF_WORKSPACE: where.workspace } : {}),
        ...(where.cliConfig ? { TF_CLI_CONFIG_FILE: where.cliConfig } : {}),
        ...extraEnv,
      },
      reject: false,
      cancelSignal: context.cancellationSignal,
      killSignal: 'SIGINT',
      forceKillAfterDelay: STOP_GRACE_MS,
      maxBuffer: 256 * 2 ** 20,
    });
    if (result.isCanceled) throw context.cancellationSignal.reason ?? new Error('cancelled');
    if (result.exitCode === 0) return { stdout: result.stdout };
    const said = diagnostics(result.stderr || result.stdout);
    const failure = new TerraformError(
      `terraform ${args[0]} ${args[1] && !args[1].startsWith('-') ? `${args[1]} ` : ''}failed in ${where.dir}: ${said}`,
    );
    const lockContention = /Error acquiring the state lock/.test(said);
    throw ApplicationFailure.create({
      type: lockContention ? 'TerraformLocked' : 'TerraformFailed',
      message: failure.message,
      nonRetryable: !lockContention,
      cause: failure,
    });
  } finally {
    clearInterval(ticker);
  }
}

/**
 * Ties Terraform's life to the worker's: where util-linux `setpriv` is there
 * (Linux), Terraform gets SIGINT, its clean stop, when the worker dies, even
 * by SIGKILL. Without it an orphaned `apply` would keep changing
 * infrastructure while the activity's retry, on another worker, looks at the
 * state to decide whether the plan was applied.
 */
async function tiedToWorker(bin: string, args: string[]): Promise<[string, string[]]> {
  setpriv ??= process.platform === 'linux' ? findOnPath('setpriv') : Promise.resolve(undefined);
  const path = await setpriv;
  return path ? [path, ['--pdeathsig', 'INT', '--', bin, ...args]] : [bin, args];
}

let setpriv: Promise<string | undefined> | undefined;

/** Terraform's error boxes without their drawing, and without warnings about the CLI's own configuration file. */
function diagnostics(text: string): string {
  const lines = text
    .split('\n')
    .map((line) =>
      stripVTControlCharacters(line)
        .replace(/^[│╷╵]\s?/, '')
        .trimEnd(),
    )
    .filter((line) => line && !/CLI configuration file|problems with the CLI configuration/i.test(line));
  return lines.slice(-ERROR_LINES).join(' ').replace(/\s+/g, ' ').trim() || 'no diagnostics';
}

/**
 * The terraform binary: TERRAFORM_BIN, else `terraform` on PATH, else our own
 * build under `<toolsDir>/bin`, made with `go install` when missing.
 */
export async function resolveTerraform(toolsDir: string): Promise<string> {
  const fromEnv = process.env.TERRAFORM_BIN;
  if (fromEnv) {
    if (await isExecutable(fromEnv)) return fromEnv;
    throw ApplicationFailure.create({
      type: 'TerraformMissing',
      message: `TERRAFORM_BIN is set to ${fromEnv}, which is not an executable file`,
      nonRetryable: true,
    });
  }
  const onPath = await findOnPath('terraform');
  if (onPath) return onPath;
  const local = join(toolsDir, 'bin', 'terraform');
  if (!(await isExecutable(local))) await buildTerraform(toolsDir);
  return local;
}

async function buildTerraform(toolsDir: string): Promise<void> {
  const go = await findOnPath('go');
  if (!go) {
    throw ApplicationFailure.create({
      type: 'TerraformMissing',
      message: `terraform is not installed and cannot be built without Go: install terraform (or set TERRAFORM_BIN), or install Go so ${TERRAFORM_MODULE} is built into ${join(toolsDir, 'bin')}`,
      nonRetryable: true,
    });
  }
  const binDir = join(toolsDir, 'bin');
  await mkdir(binDir, { recursive: true });
  const build = await execa(go, ['install', TERRAFORM_MODULE], { env: { GOBIN: binDir }, all: true, reject: false });
  const buildLog = join(toolsDir, 'terraform-build.log');
  await writeFile(buildLog, build.all ?? '');
  if (build.failed) throw new Error(`building ${TERRAFORM_MODULE} failed (${build.shortMessage}); see ${buildLog}`);
}
