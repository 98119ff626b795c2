/**
 * Terraform, as the seeds run it by hand: init, state rm, a targeted
 * `plan -out`, a look at the saved plan, `apply` of exactly that plan, outputs.
 * General enough for any runbook that moves a resource out of Terraform's
 * hands and back (bucket-swap, db-migration).
 *
 * Every command runs with TF_WORKSPACE set rather than after `workspace
 * select`, so two runs on one directory cannot switch each other's workspace.
 * Plans and outputs can hold secrets: activities return summaries (addresses,
 * actions, non-sensitive outputs), never the plan's JSON or a sensitive value,
 * and errors quote Terraform's diagnostics, which mask sensitive values.
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { execa } from 'execa';
import { FailureType } from '../messages.js';
import { findOnPath, isExecutable } from '../stack/executables.js';

/** The last tag of Terraform that `go install` accepts (later ones carry `replace` directives). */
export const TERRAFORM_MODULE = 'github.com/hashicorp/terraform@v1.5.7';
const projectToolsDir = fileURLToPath(new URL('../../../.tools', import.meta.url));

export interface TerraformDeps {
  /** Path of the terraform binary; default: see `resolveTerraform`. */
  terraformBin?: () => Promise<string>;
}

/** A working directory and the workspace commands run in. */
export interface TerraformDir {
  dir: string;
  /** Default: `default`. */
  workspace?: string;
}

export interface PlannedChange {
  address: string;
  /** Terraform's actions: ["create"], ["update"], ["delete"], ["delete","create"] (replace), ["no-op"], ... */
  actions: string[];
}

/** What a saved plan does, without any attribute value (those may be secret). */
export interface PlanSummary {
  changes: PlannedChange[];
  /** Non-sensitive outputs whose planned value is known. */
  outputs: Record<string, unknown>;
}

export interface PlanGuard extends TerraformDir {
  planFile: string;
  /** The address the plan is for: it may be created, changed or replaced; nothing else may be destroyed or replaced. */
  target: string;
  /** An output the plan must give this value, when the plan knows it already. */
  expectOutput?: { name: string; value: string };
}

export function createTerraformActivities(deps: TerraformDeps = {}) {
  let bin: Promise<string> | undefined;
  const terraform = (where: TerraformDir, args: string[]) => {
    bin ??= (deps.terraformBin ?? (() => resolveTerraform(projectToolsDir)))();
    bin.catch(() => (bin = undefined)); // a failed build is tried again by the next attempt
    return bin.then((path) => runTerraform(path, where, args));
  };

  return {
    /** `terraform init` with the committed lock file (never rewritten by a runbook). */
    async terraformInit(where: TerraformDir): Promise<void> {
      refuseMissingDir(where.dir);
      await terraform({ dir: where.dir }, ['init', '-no-color', '-input=false', '-lockfile=readonly']);
    },

    /**
     * `terraform workspace select`, for callers that want the directory's
     * selection changed. Commands here do not need it (they set TF_WORKSPACE).
     */
    async terraformSelectWorkspace(where: Required<TerraformDir>): Promise<void> {
      await requireWorkspace(terraform, where);
      await terraform({ dir: where.dir }, ['workspace', 'select', where.workspace]);
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

    /** A targeted plan saved to `planFile` (relative to the directory), to be reviewed and then applied as is. */
    async terraformPlan(args: TerraformDir & { targets: string[]; planFile: string; destroy?: boolean }): Promise<PlanSummary> {
      await terraform(args, ['plan', '-no-color', '-input=false', '-lock-timeout=60s', ...(args.destroy ? ['-destroy'] : []), ...args.targets.map((t) => `-target=${t}`), `-out=${args.planFile}`]);
      return readPlan(terraform, args, args.planFile);
    },

    async terraformShowPlan(args: TerraformDir & { planFile: string }): Promise<PlanSummary> {
      return readPlan(terraform, args, args.planFile);
    },

    /**
     * The plan guard: reads the saved plan and refuses it (non-retryable
     * `PlanRefused`, naming the addresses) when it destroys or replaces anything
     * but the target, does not create or change the target, or gives an
     * expected output another value.
     */
    async terraformGuardPlan(guard: PlanGuard): Promise<PlanSummary> {
      const plan = await readPlan(terraform, guard, guard.planFile);
      const problems = planProblems(plan, guard);
      if (problems.length) {
        throw ApplicationFailure.create({ type: 'PlanRefused', message: `the plan ${guard.planFile} was refused, nothing applied: ${problems.join('; ')}`, nonRetryable: true });
      }
      return plan;
    },

    /**
     * Applies the saved plan and nothing else. A plan already applied by an
     * attempt whose result was lost is "stale" to Terraform: that counts as
     * applied when the state holds what the plan creates.
     */
    async terraformApply(args: TerraformDir & { planFile: string }): Promise<{ alreadyApplied: boolean }> {
      const plan = await readPlan(terraform, args, args.planFile);
      try {
        await terraform(args, ['apply', '-no-color', '-input=false', '-lock-timeout=60s', args.planFile]);
        return { alreadyApplied: false };
      } catch (err) {
        if (!(err instanceof ApplicationFailure) || !/Saved plan is stale/.test(err.message)) throw err;
        const state = await stateList(terraform, args);
        const created = plan.changes.filter((c) => c.actions.includes('create')).map((c) => c.address);
        if (created.every((address) => state.includes(address))) return { alreadyApplied: true };
        throw ApplicationFailure.create({ type: 'PlanStale', message: `the state changed since ${args.planFile} was made; plan again`, nonRetryable: true });
      }
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

type Terraform = (where: TerraformDir, args: string[]) => Promise<{ stdout: string }>;

/** What is wrong with a plan, as a pure function of its summary. */
export function planProblems(plan: PlanSummary, guard: Pick<PlanGuard, 'target' | 'expectOutput'>): string[] {
  const problems: string[] = [];
  const destroyed = plan.changes.filter((c) => c.actions.includes('delete') && !isWithin(c.address, guard.target));
  if (destroyed.length) {
    problems.push(`it would ${destroyed.map((c) => `${c.actions.includes('create') ? 'replace' : 'destroy'} ${c.address}`).join(', ')}, not only ${guard.target}`);
  }
  if (!plan.changes.some((c) => isWithin(c.address, guard.target) && (c.actions.includes('create') || c.actions.includes('update')))) {
    problems.push(`it does not create ${guard.target} (check the resource address)`);
  }
  const expected = guard.expectOutput;
  if (expected && expected.name in plan.outputs && plan.outputs[expected.name] !== expected.value) {
    problems.push(`output ${expected.name} would be '${String(plan.outputs[expected.name])}', not '${expected.value}'`);
  }
  return problems;
}

/** Whether `address` is `target` or inside it (an instance `target[0]`, or a resource of module `target`). */
export function isWithin(address: string, target: string): boolean {
  return address === target || address.startsWith(`${target}.`) || address.startsWith(`${target}[`);
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
    changes: (json.resource_changes ?? []).map((r) => ({ address: r.address, actions: r.change.actions })).filter((c) => !c.actions.every((a) => a === 'no-op' || a === 'read')),
    outputs,
  };
}

async function stateList(terraform: Terraform, where: TerraformDir): Promise<string[]> {
  const { stdout } = await terraform(where, ['state', 'list']);
  return stdout.split('\n').map((line) => line.trim()).filter(Boolean);
}

async function requireWorkspace(terraform: Terraform, where: TerraformDir): Promise<void> {
  const workspace = where.workspace ?? 'default';
  const { stdout } = await terraform({ dir: where.dir }, ['workspace', 'list']);
  const known = stdout.split('\n').map((line) => line.replace(/^\*/, '').trim()).filter(Boolean);
  if (!known.includes(workspace)) {
    throw invalidTerraformInput('terraform.workspace', `no workspace '${workspace}' in ${where.dir} (it has: ${known.join(', ')})`);
  }
}

function refuseMissingDir(dir: string): void {
  if (!isAbsolute(dir)) throw invalidTerraformInput('terraform.dir', `'${dir}' must be an absolute path (the worker's working directory is not yours)`);
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
async function runTerraform(bin: string, where: TerraformDir, args: string[]): Promise<{ stdout: string }> {
  const context = Context.current();
  const ticker = setInterval(() => context.heartbeat(), HEARTBEAT_EVERY_MS);
  try {
    const result = await execa(bin, args, {
      cwd: where.dir,
      env: { TF_IN_AUTOMATION: '1', TF_INPUT: '0', ...(where.workspace && args[0] !== 'workspace' ? { TF_WORKSPACE: where.workspace } : {}) },
      reject: false,
      cancelSignal: context.cancellationSignal,
      killSignal: 'SIGINT',
      forceKillAfterDelay: STOP_GRACE_MS,
      maxBuffer: 256 * 2 ** 20,
    });
    if (result.isCanceled) throw context.cancellationSignal.reason ?? new Error('cancelled');
    if (result.exitCode === 0) return { stdout: result.stdout };
    const said = diagnostics(result.stderr || result.stdout);
    const failure = new TerraformError(`terraform ${args[0]} ${args[1] && !args[1].startsWith('-') ? `${args[1]} ` : ''}failed in ${where.dir}: ${said}`);
    const lockContention = /Error acquiring the state lock/.test(said);
    throw ApplicationFailure.create({ type: lockContention ? 'TerraformLocked' : 'TerraformFailed', message: failure.message, nonRetryable: !lockContention, cause: failure });
  } finally {
    clearInterval(ticker);
  }
}

/** Terraform's error boxes without their drawing, and without warnings about the CLI's own configuration file. */
function diagnostics(text: string): string {
  const lines = text
    .split('\n')
    .map((line) => stripVTControlCharacters(line).replace(/^[│╷╵]\s?/, '').trimEnd())
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
    throw ApplicationFailure.create({ type: 'TerraformMissing', message: `TERRAFORM_BIN is set to ${fromEnv}, which is not an executable file`, nonRetryable: true });
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
