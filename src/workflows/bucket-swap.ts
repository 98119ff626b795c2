/**
 * Seed 002, "S3 Migration": move a bucket's objects into a new bucket, and
 * delete the old bucket once we are satisfied.
 *
 *   terraform state rm aws_s3_bucket.static          so Terraform never deletes the old bucket
 *   terraform plan -out tfplan -target aws_s3_bucket.static
 *   terraform apply tfplan                           (or, without Terraform, create the bucket like the old one)
 *   aws s3 sync s3://$OLD_BUCKET s3://$NEW_BUCKET
 *   once satisfied, delete the old bucket
 *
 * "Satisfied" is made explicit: every object is verified by key, size and
 * ETag, and a person approves `delete-old` with the counts in front of them.
 *
 * Nothing is undone on failure, rejection or timeout, by design: the old
 * bucket is never touched before the approval, and the new one is kept
 * (empty, partly or fully copied) for inspection rather than deleted by a
 * machine that just failed. The failure message says what is kept where.
 */
import { ApplicationFailure, CancellationScope, isCancellation } from '@temporalio/workflow';
import type { AwsConnection } from '../config.js';
import { FailureType, type RunbookInput } from '../messages.js';
import { formatBytes, formatCount } from '../format.js';
import type { BucketSettings, CopyResult, CreatedBucket, DeletedBucket, S3Activities, SwapFindings, VerifiedCopy } from '../activities/s3.js';
import type { PlanSummary, TerraformActivities } from '../activities/terraform.js';
import { definePlan, describeError, runRunbook, stepActivities, type Runbook } from './engine/index.js';
import { failureType } from './engine/errors.js';

export interface TerraformParams {
  /** Absolute path of the Terraform working directory on the worker. */
  dir: string;
  workspace: string;
  /** Address of the bucket's resource, e.g. aws_s3_bucket.static. */
  address: string;
  /** Output that names the bucket after apply. */
  output: string;
  /** The environment's Terraform CLI configuration (TF_CLI_CONFIG_FILE), e.g. naming a provider mirror. */
  cliConfig?: string;
}

export interface BucketSwapParams {
  /** Where the AWS APIs are; credentials stay with the worker. */
  aws: AwsConnection;
  source: string;
  target: string;
  /** Who makes the new bucket: Terraform (a targeted plan, reviewed by a guard, applied) or this run (direct API). */
  mode: 'terraform' | 'aws';
  terraform?: TerraformParams;
  /** Copies in flight at once. */
  concurrency: number;
  /** Objects larger than this (bytes) are copied in parts. */
  multipartThreshold: number;
  /** Part size (bytes) of those copies. */
  partSize: number;
}

export interface BucketSwapResult {
  source: string;
  target: string;
  mode: BucketSwapParams['mode'];
  bucket: CreatedBucket;
  copied: CopyResult;
  verified: VerifiedCopy;
  deleted: DeletedBucket;
}

export const bucketSwapPlan = definePlan({
  steps: ['preflight', 'detach-old-state', 'plan-new-bucket', 'guard-plan', 'apply-plan', 'create-bucket', 'copy-objects', 'verify', 'delete-old', 'delete-old-bucket'],
  checkpoints: ['delete-old'],
});

const TERRAFORM_STEPS = ['detach-old-state', 'plan-new-bucket', 'guard-plan', 'apply-plan'] as const;

const s3 = stepActivities<S3Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 8 },
});

/** Copy, verify and delete page through whole buckets: one long activity each, heartbeating a small checkpoint. */
const bulk = stepActivities<S3Activities>({
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 20 },
});

const terraform = stepActivities<TerraformActivities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
});

export async function bucketSwap(input: RunbookInput): Promise<BucketSwapResult> {
  return runRunbook(input, bucketSwapPlan, async (rb: Runbook<BucketSwapParams>) => {
    const p = rb.params;
    const found = await rb.read('preflight', preflightSummary(p), () => preflight(p), {
      detail: (f) => `s3://${p.source} in ${f.source.settings.region} (${describeSettings(f.source.settings)}); s3://${p.target} ${f.target.exists ? 'exists and is empty' : 'does not exist yet'}`,
    });
    const progress = new Progress(p);
    try {
      const bucket = p.mode === 'terraform' ? await createWithTerraform(rb, found, progress) : await createWithApi(rb, found, progress);
      const copy = { aws: found.aws, source: p.source, target: p.target, multipartThreshold: p.multipartThreshold, partSize: p.partSize };

      progress.reached('copying');
      const copied = await rb.change('copy-objects', `copy every object s3://${p.source} -> s3://${p.target} (${p.concurrency} at a time, in parts above ${formatBytes(p.multipartThreshold)})`,
        () => bulk.copyBucketObjects({ ...copy, concurrency: p.concurrency }), {
          detail: describeCopied,
          dryResult: { objects: 0, bytes: 0, copied: 0, multipart: 0, alreadyCopied: 0, vanished: 0, pages: 0, attempt: 0, abortedUploads: 0 },
        });

      progress.reached('copied');
      const verified = rb.dryRun
        ? skipped<VerifiedCopy>(rb, 'verify', `would compare every key, size and ETag of s3://${p.target} with s3://${p.source}`, { objects: 0, bytes: 0, multipart: 0 })
        : await rb.read('verify', `compare every key, size and ETag of s3://${p.target} with s3://${p.source}`, () => bulk.verifyBucketCopy(copy), { detail: describeVerified });
      progress.reached('verified');

      await rb.checkpoint('delete-old', deleteOldPrompt(p, verified));

      progress.reached('deleting');
      const deleted = await rb.change('delete-old-bucket', `empty s3://${p.source} (every version, 1,000 at a time) and delete it`,
        () => bulk.deleteBucket({ aws: found.aws, bucket: p.source, ...(verified.newestSourceObject ? { keepNewerThan: verified.newestSourceObject } : {}) }), {
          detail: (d) => (d.alreadyGone ? `s3://${p.source} was already gone` : `deleted ${formatCount(d.versionsDeleted)} object versions, then the bucket`),
          dryResult: { bucket: p.source, versionsDeleted: 0, alreadyGone: false },
        });
      return { source: p.source, target: p.target, mode: p.mode, bucket, copied, verified, deleted };
    } catch (err) {
      throw progress.explain(err);
    }
  });
}

async function preflight(p: BucketSwapParams): Promise<SwapFindings> {
  const [found] = await Promise.all([
    s3.inspectBucketSwap({ aws: p.aws, source: p.source, target: p.target }),
    p.mode === 'terraform' ? inspectTerraform(requireTerraform(p)) : undefined,
  ]);
  return found;
}

/** The directory is initialised and the workspace exists; reading the state proves both. */
async function inspectTerraform(t: TerraformParams): Promise<void> {
  await terraform.terraformInit(terraformDir(t));
  await terraform.terraformStateList(terraformDir(t));
}

async function createWithApi(rb: Runbook<BucketSwapParams>, found: SwapFindings, progress: Progress): Promise<CreatedBucket> {
  const p = rb.params;
  for (const step of TERRAFORM_STEPS) rb.skip(step, 'mode aws: the bucket is created through the S3 API');
  progress.reached('creating');
  return rb.change('create-bucket', `create s3://${p.target} in ${found.source.settings.region} like s3://${p.source} (${describeSettings(found.source.settings)})`,
    () => s3.createBucketLike({ aws: found.aws, bucket: p.target, like: found.source.settings, whenExists: 'apply' }), {
      detail: describeCreated,
      dryResult: { bucket: p.target, created: false, applied: [], notCopied: [] },
    });
}

/**
 * The seed's Terraform steps: detach the old bucket from the state, plan the
 * new one alone, refuse a plan that would destroy anything else, apply exactly
 * the plan that was checked, and read the bucket's name from the outputs.
 */
async function createWithTerraform(rb: Runbook<BucketSwapParams>, found: SwapFindings, progress: Progress): Promise<CreatedBucket> {
  const p = rb.params;
  const t = requireTerraform(p);
  const where = terraformDir(t);
  // A name: the activities keep it in this run's own folder, outside the Terraform directory.
  const planFile = `bucket-swap-${p.target}.tfplan`;
  rb.skip('create-bucket', `mode terraform: Terraform creates the bucket (${t.address})`);

  progress.reached('detaching');
  await rb.change('detach-old-state', `terraform state rm ${t.address} in workspace ${t.workspace}, so Terraform never deletes s3://${p.source}`,
    () => terraform.terraformStateRm({ ...where, address: t.address }), {
      detail: (r) => (r.removed ? `removed ${t.address} from the ${t.workspace} state` : `${t.address} was not in the ${t.workspace} state (detached before)`),
      dryResult: { removed: false },
    });
  progress.reached('planning');

  try {
    const plan = await rb.change('plan-new-bucket', `terraform plan -target=${t.address} -out=${planFile}`,
      () => terraform.terraformPlan({ ...where, targets: [t.address], planFile }), { detail: describePlan, dryResult: { changes: [], outputs: {}, planFile, sha256: '' } });

    if (rb.dryRun) {
      rb.skip('guard-plan', `would refuse the plan if it destroyed or replaced anything but ${t.address}`);
    } else {
      await rb.read('guard-plan', `check that ${planFile} destroys or replaces nothing but ${t.address} (${plan.changes.length} planned changes)`,
        () => terraform.terraformGuardPlan({ ...where, planFile, allow: [t.address], require: [t.address], expectOutput: { name: t.output, value: p.target } }), {
          detail: (checked) => `accepted: ${describePlan(checked)}`,
        });
    }

    progress.reached('applying');
    return await rb.change('apply-plan', `terraform apply ${planFile}, then check that output ${t.output} names s3://${p.target}`, async () => {
      await terraform.terraformApply({ ...where, planFile, sha256: plan.sha256 });
      const { values } = await terraform.terraformOutputs(where);
      if (values[t.output] !== p.target) {
        throw ApplicationFailure.create({ type: 'UnexpectedBucketName', message: `terraform output ${t.output} is '${String(values[t.output])}', not the target '${p.target}'`, nonRetryable: true });
      }
      // A bucket Terraform made is left as Terraform made it; where none exists (a
      // terraform_data stand-in for the bucket), it is made like the source.
      return s3.createBucketLike({ aws: found.aws, bucket: p.target, like: found.source.settings, whenExists: 'keep' });
    }, { detail: describeCreated, dryResult: { bucket: p.target, created: false, applied: [], notCopied: [] } });
  } finally {
    // The saved plan holds every variable's value: never left behind, whether applied, refused or cancelled.
    if (!rb.dryRun) await CancellationScope.nonCancellable(() => terraform.terraformDiscardPlan({ planFile }));
  }
}

function terraformDir(t: TerraformParams) {
  return { dir: t.dir, workspace: t.workspace, ...(t.cliConfig ? { cliConfig: t.cliConfig } : {}) };
}

function requireTerraform(p: BucketSwapParams): TerraformParams {
  if (!p.terraform) throw ApplicationFailure.create({ type: FailureType.invalidInput, message: 'terraform: required in mode terraform', nonRetryable: true });
  return p.terraform;
}

/**
 * How far the run got, to say in a failure what is kept where. Failures keep
 * their type (a rejection stays a rejection); cancellation passes untouched.
 */
class Progress {
  private stage: 'checked' | 'detaching' | 'planning' | 'applying' | 'creating' | 'copying' | 'copied' | 'verified' | 'deleting' = 'checked';

  constructor(private readonly p: BucketSwapParams) {}

  reached(stage: Progress['stage']): void {
    this.stage = stage;
  }

  explain(err: unknown): unknown {
    if (isCancellation(err) || this.stage === 'checked') return err;
    return ApplicationFailure.create({ type: failureType(err) ?? FailureType.failed, message: `${describeError(err).replace(/\.$/, '')}. ${this.kept()}`, nonRetryable: true });
  }

  private kept(): string {
    const { source, target, terraform: t } = this.p;
    // Before apply, the old bucket's address is out of the state; after it, the address is the new bucket.
    const detached = t ? ` ${t.address} stays out of the Terraform state (${t.workspace}), so Terraform cannot delete s3://${source}; \`terraform import\` it to take it back.` : '';
    const managed = t ? ` Terraform manages s3://${target} as ${t.address}; s3://${source} is out of its state.` : '';
    switch (this.stage) {
      case 'checked':
        return '';
      case 'detaching':
        return `Nothing was deleted: s3://${source} is untouched; see \`terraform state list\` for whether ${t?.address} is still in the state.`;
      case 'planning':
      case 'applying':
        return `Nothing was deleted: s3://${source} is untouched.${detached}`;
      case 'creating':
        return `Nothing was deleted: s3://${source} is untouched; s3://${target}, if created, is empty and kept.`;
      case 'copying':
        return `Nothing was deleted: s3://${source} is untouched; s3://${target} is kept as far as it was copied, for inspection (empty it before running again).${managed}`;
      case 'copied':
        return `Nothing was deleted: s3://${source} is untouched; s3://${target} keeps the copy that failed verification, for inspection (empty it before running again).${managed}`;
      case 'verified':
        return `Nothing was deleted: both buckets are kept, s3://${source} untouched and s3://${target} with the verified copy.${managed}`;
      case 'deleting':
        return `s3://${target} holds the verified copy; only versions of s3://${source} that were verified were deleted.`;
    }
  }
}

function skipped<T>(rb: Runbook<BucketSwapParams>, step: string, why: string, result: T): T {
  rb.skip(step, why);
  return result;
}

function preflightSummary(p: BucketSwapParams): string {
  const tf = p.mode === 'terraform' && p.terraform ? `; terraform init in ${p.terraform.dir}, workspace ${p.terraform.workspace}` : '';
  return `check s3://${p.source} is readable and s3://${p.target} absent or empty${tf}`;
}

function describeSettings(s: BucketSettings): string {
  const parts = [
    `versioning ${s.versioning.toLowerCase()}`,
    s.encryption ? `encryption ${s.encryption.map((r) => r.ApplyServerSideEncryptionByDefault?.SSEAlgorithm ?? '?').join('+')}` : 'no default encryption',
    s.publicAccessBlock ? 'public access blocked' : 'no public access block',
    `${s.tags.length} tags`,
  ];
  if (s.unreadable.length) parts.push(`unreadable: ${s.unreadable.join(', ')}`);
  return parts.join(', ');
}

function describeCreated(c: CreatedBucket): string {
  const made = c.created ? `created s3://${c.bucket}` : `s3://${c.bucket} existed already`;
  return `${made}${c.applied.length ? `; set ${c.applied.join(', ')}` : ''}${c.notCopied.length ? `; not copied: ${c.notCopied.join('; ')}` : ''}`;
}

function describeCopied(c: CopyResult): string {
  const resumed = [
    c.alreadyCopied ? `${formatCount(c.alreadyCopied)} found copied by an earlier attempt` : '',
    c.vanished ? `${formatCount(c.vanished)} deleted from the source meanwhile` : '',
  ].filter(Boolean);
  return `${formatCount(c.objects)} objects (${formatBytes(c.bytes)}): ${formatCount(c.copied)} copied whole, ${formatCount(c.multipart)} in parts` +
    `${resumed.map((r) => `, ${r}`).join('')}${c.attempt > 1 ? `; resumed at attempt ${c.attempt} from the last checkpoint` : ''}`;
}

function describeVerified(v: VerifiedCopy): string {
  return `${formatCount(v.objects)} objects (${formatBytes(v.bytes)}) match${v.multipart ? `; ${multipartCopies(v.multipart)} judged by size and part count` : ''}`;
}

/** What the approver sees: the counts verified, and what each decision does. */
function deleteOldPrompt(p: BucketSwapParams, v: VerifiedCopy): string {
  return `s3://${p.target} holds a verified copy of all ${formatCount(v.objects)} objects (${formatBytes(v.bytes)}) of s3://${p.source}: ` +
    `keys, sizes and ETags match${v.multipart ? ` (${multipartCopies(v.multipart)} by size and part count)` : ''}. ` +
    `Approve to delete s3://${p.source} with every version in it; reject to keep both buckets.`;
}

function multipartCopies(n: number): string {
  return `${formatCount(n)} multipart ${n === 1 ? 'copy' : 'copies'}`;
}

function describePlan(plan: PlanSummary): string {
  if (!plan.changes.length) return 'no changes';
  return plan.changes.map((c) => `${c.actions.join('+')} ${c.address}`).join(', ');
}
