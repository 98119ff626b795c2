/**
 * Seed 002, "Updating the Infrastructure" (and seed 003 "Terraform", the core
 * of seed 000): change infrastructure through Terraform, on the right workspace.
 *
 *   the image tag being deployed is published in ECR   (seed 003; when checkImage names one)
 *   terraform init
 *   terraform workspace select staging        "it is crucial you are on the correct workspace"
 *   terraform plan -out tfplan
 *   review the plan for unexpected changes    "think twice about what will happen"
 *   terraform apply tfplan
 *
 * The workspace must exist (a run never creates one); the plan is saved in a
 * folder of this run, refused before review when it destroys or replaces
 * anything `allow` does not name, and applied only as the very file reviewed
 * (its sha256). The saved plan holds every variable's value, so it is
 * discarded however the run ends. Nothing is undone automatically: a failed
 * apply is reported with the addresses it changed.
 */
import { CancellationScope } from '@temporalio/workflow';
import type { AwsConnection } from '../config.js';
import type { RunbookInput } from '../messages.js';
import type { EcrActivities } from '../activities/ecr.js';
import type { SavedPlan, TerraformActivities, TerraformDir } from '../activities/terraform.js';
import { describeChanges, describeCounts, planCounts, planProblems, type PlanCounts } from '../terraform-plan.js';
import { API_RETRY, definePlan, refuseIf, runRunbook, stepActivities, TOOL_RETRY, type RunbookOf } from './engine/index.js';

export interface TerraformApplyParams {
  /** Where the AWS APIs are (for s3:// var files and secretsmanager: references); credentials stay with the worker. */
  aws: AwsConnection;
  /** The directory's name in the environment's allowlist, as the operator gave it. */
  dirName: string;
  /** Its path on the worker, from the environment's config. */
  dir: string;
  /** The environment's Terraform CLI configuration (TF_CLI_CONFIG_FILE), e.g. naming a provider mirror. */
  cliConfig?: string;
  workspace: string;
  /** Paths inside the directory, or s3://bucket/key. */
  varFiles: string[];
  /** Non-secret variables. */
  vars: Record<string, unknown>;
  /** Secret variables: variable name -> secret reference (from the environment's logical credential names). */
  secretVars: Record<string, string>;
  /** Addresses the plan may destroy or replace; nothing else. */
  allow: string[];
  /** Seed 003: the image the change deploys must be published in ECR before anything is planned. */
  checkImage?: { repository: string; tag: string };
}

export interface TerraformApplyResult {
  dir: string;
  workspace: string;
  /** Which binary ran ("Terraform v1.11.4" or "OpenTofu v…"). */
  tool: string;
  counts: PlanCounts;
  changes: string;
  sha256: string;
  applied: boolean;
  /** The plan was applied by an attempt whose result was lost (found in the state). */
  alreadyApplied: boolean;
}

export const terraformApplyPlan = definePlan({
  steps: ['check-image', 'init', 'workspace', 'var-files', 'plan', 'guard', 'review', 'apply', 'clean-up'],
  checkpoints: ['review'],
});

/** The engine, typed for this plan: a misspelt step name does not compile. */
type Apply = RunbookOf<TerraformApplyParams, typeof terraformApplyPlan>;

const PLAN_FILE = 'terraform-apply.tfplan';

const ecr = stepActivities<EcrActivities>({ startToCloseTimeout: '1 minute', retry: API_RETRY });

const tf = stepActivities<TerraformActivities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '30 seconds',
  retry: TOOL_RETRY,
});

export async function terraformApply(input: RunbookInput): Promise<TerraformApplyResult> {
  return runRunbook(input, terraformApplyPlan, async (rb: Apply) => {
    const p = rb.params;
    const where: TerraformDir = { dir: p.dir, workspace: p.workspace, ...(p.cliConfig ? { cliConfig: p.cliConfig } : {}) };
    await checkImage(rb);
    const { tool } = await rb.read(
      'init',
      `terraform init in ${p.dirName} (${p.dir}), lock file read-only`,
      () => tf.terraformInit(where),
      { detail: (r) => `initialised with ${r.tool}` },
    );
    await rb.read('workspace', `select workspace ${p.workspace} (refused unless it exists)`, () => tf.terraformStateList(where), {
      detail: (state) => `workspace ${p.workspace}: ${state.length} resources in its state`,
    });
    const varFiles = await fetchVarFiles(rb);
    try {
      const plan = await rb.read(
        'plan',
        `terraform plan -out into this run's folder${describeInputs(p)}`,
        () => tf.terraformPlan({ ...where, planFile: PLAN_FILE, varFiles, vars: p.vars, secretVars: p.secretVars, aws: p.aws }),
        {
          detail: (s) => `${describeCounts(planCounts(s))}: ${describeChanges(s)}; saved as ${s.planFile} (sha256 ${s.sha256})`,
        },
      );
      await rb.read(
        'guard',
        `refuse destroys and replaces outside allow (${p.allow.join(', ') || 'none allowed'})`,
        async () => guard(plan, p.allow),
        {
          detail: () => `accepted: ${describeCounts(planCounts(plan))}${plan.changes.length ? `: ${describeChanges(plan)}` : ''}`,
        },
      );
      if (!plan.changes.length)
        return finish(rb, tool, plan, { applied: false, alreadyApplied: false }, 'no changes: nothing to review or apply');

      await rb.checkpoint('review', reviewPrompt(p, plan));
      const applied = await rb.change(
        'apply',
        `terraform apply the reviewed plan (sha256 ${plan.sha256.slice(0, 12)}…), exactly as saved`,
        () => tf.terraformApply({ ...where, planFile: PLAN_FILE, sha256: plan.sha256 }),
        {
          detail: (r) =>
            r.alreadyApplied
              ? 'the plan had been applied by an attempt whose result was lost (its changes are in the state)'
              : `applied: ${describeChanges(plan)}`,
          dryResult: { alreadyApplied: false },
        },
      );
      return finish(rb, tool, plan, { applied: !rb.dryRun, alreadyApplied: applied.alreadyApplied });
    } finally {
      await CancellationScope.nonCancellable(() =>
        rb.read(
          'clean-up',
          'delete the saved plan and downloaded var files (they hold variable values)',
          () => tf.terraformDiscardPlan({ planFile: PLAN_FILE }),
          { detail: (r) => (r.removed ? 'deleted the saved plan' : 'no saved plan left') },
        ),
      );
    }
  });
}

/** Seed 003: "make sure the image tag you are deploying is published in ECR", before anything is planned. */
async function checkImage(rb: Apply): Promise<void> {
  const p = rb.params;
  if (!p.checkImage) return rb.skip('check-image', 'no image named (checkImage)');
  const { repository, tag } = p.checkImage;
  await rb.read(
    'check-image',
    `check that ${repository}:${tag} is published in ECR`,
    async () => {
      const image = await ecr.publishedImage({ aws: p.aws, repository, tag });
      refuseIf(!image, 'checkImage', `${repository}:${tag} is not published in ECR: push the image before applying`);
      return image!;
    },
    { detail: (image) => `${repository}:${tag} is ${image.digest}` },
  );
}

async function fetchVarFiles(rb: Apply): Promise<string[]> {
  const p = rb.params;
  if (!p.varFiles.length) {
    rb.skip('var-files', 'no var files');
    return [];
  }
  const { paths } = await rb.read(
    'var-files',
    `read var files ${p.varFiles.join(', ')} (s3:// ones into this run's folder)`,
    () => tf.terraformFetchVarFiles({ dir: p.dir, varFiles: p.varFiles, aws: p.aws }),
    { detail: (r) => `${r.paths.length} var files ready` },
  );
  return paths;
}

/** The plan guard; a refusal is the operator's to fix (allow, vars, the configuration), so it is bad input: nothing changed. */
async function guard(plan: SavedPlan, allow: string[]): Promise<void> {
  const problems = planProblems(plan, { allow });
  refuseIf(problems.length > 0, 'allow', `the plan was refused before review, nothing applied: ${problems.join('; ')}`);
}

function finish(
  rb: Apply,
  tool: string,
  plan: SavedPlan,
  outcome: { applied: boolean; alreadyApplied: boolean },
  why?: string,
): TerraformApplyResult {
  if (why) {
    rb.skip('review', why);
    rb.skip('apply', why);
  }
  return {
    dir: rb.params.dirName,
    workspace: rb.params.workspace,
    tool,
    counts: planCounts(plan),
    changes: describeChanges(plan),
    sha256: plan.sha256,
    ...outcome,
  };
}

/** What the approver decides on: the counts, every address, and which file exactly will be applied. */
function reviewPrompt(p: TerraformApplyParams, plan: SavedPlan): string {
  return (
    `terraform plan of ${p.dirName}, workspace ${p.workspace}: ${describeCounts(planCounts(plan))}: ${describeChanges(plan)}. ` +
    `Plan sha256 ${plan.sha256}. Approve to apply exactly this plan; reject to apply nothing (the plan is deleted).`
  );
}

function describeInputs(p: TerraformApplyParams): string {
  const parts = [
    p.varFiles.length ? `${p.varFiles.length} var files` : '',
    Object.keys(p.vars).length ? `vars ${Object.keys(p.vars).join(', ')}` : '',
    Object.keys(p.secretVars).length ? `secret vars ${Object.keys(p.secretVars).join(', ')}` : '',
  ].filter(Boolean);
  return parts.length ? ` with ${parts.join('; ')}` : '';
}
