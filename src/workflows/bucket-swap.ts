/**
 * Seed 002, "S3 Migration": move a bucket's objects into a new bucket, and
 * delete the old bucket once we are satisfied.
 *
 *   stop all processes that can update data in the bucket   (the writer services, scaled to 0)
 *   terraform state rm aws_s3_bucket.static          so Terraform never deletes the old bucket
 *   terraform plan -out tfplan -target aws_s3_bucket.static
 *   terraform apply tfplan                           (or, without Terraform, create the bucket like the old one)
 *   aws s3 sync s3://$OLD_BUCKET s3://$NEW_BUCKET
 *   once satisfied, delete the old bucket
 *
 * "Satisfied" is made explicit: every object is verified by key, size and
 * ETag (content where ETags cannot be compared), the writers run again, and a
 * person approves `delete-old` with the counts, what the delete drops, what
 * the new bucket could not be given, and the evidence of who reads which
 * bucket in front of them. Right before deleting, both buckets are checked
 * again: anything changed since the approval and nothing is deleted.
 *
 * Until the writers run again, a failure starts them again as they were. The
 * buckets are never undone, by design: the old bucket is never touched before
 * the approval, and the new one is kept (empty, partly or fully copied) for
 * inspection rather than deleted by a machine that just failed. The failure
 * message says what is kept where.
 */
import { ApplicationFailure, CancellationScope, patched, workflowInfo } from '@temporalio/workflow';
import type { AwsConnection } from '../config.js';
import { FailureType, type RunbookInput } from '../messages.js';
import { formatBytes, formatCount } from '../format.js';
import type {
  BucketSettings,
  CopyResult,
  CreatedBucket,
  DeletedBucket,
  DroppedVersions,
  S3Activities,
  SwapFindings,
  VerifiedCopy,
} from '../activities/s3.js';
import type { BucketWriter, BucketWriterRef } from '../activities/bucket-users.js';
import type { DeployRunsActivities } from '../activities/deploy-runs.js';
import type { PlanSummary, TerraformActivities } from '../activities/terraform.js';
import type { WriterActivities, WriterTarget } from '../activities/writers.js';
import { definePlan, refuseIfHeld, runRunbook, stepActivities, API_RETRY, WAIT_RETRY, TOOL_RETRY, type RunbookOf } from './engine/index.js';

export interface TerraformParams {
  /** Absolute path of the Terraform working directory on the worker (from the environment's terraform.dirs). */
  dir: string;
  /** Its name in terraform.dirs (runs started before the allowlist gave a path). */
  dirName?: string;
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
  /** The ECS services that can write to the old bucket (unset in runs started before writers were stopped). */
  writers?: BucketWriterRef[];
  /** How long they may take to stop or start. */
  writersTimeoutMs?: number;
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
  steps: [
    'preflight',
    'stop-writers',
    'detach-old-state',
    'plan-new-bucket',
    'guard-plan',
    'apply-plan',
    'create-bucket',
    'copy-objects',
    'verify',
    'start-writers',
    'check-readers',
    'delete-old',
    'recheck',
    'delete-old-bucket',
  ],
  checkpoints: ['delete-old'],
});

/** The engine, typed for this plan: a misspelt step name does not compile. */
type Swap = RunbookOf<BucketSwapParams, typeof bucketSwapPlan>;

/**
 * Runs started before this marker neither stop writers nor recheck before
 * deleting; they finish as they started, so their histories replay.
 */
const STOPS_WRITERS_AND_RECHECKS = 'bucket-swap-stops-writers-and-rechecks';

const TERRAFORM_STEPS = ['detach-old-state', 'plan-new-bucket', 'guard-plan', 'apply-plan'] as const;
const NEWER_STEPS = ['stop-writers', 'start-writers', 'check-readers', 'recheck'] as const;

type Activities = S3Activities & WriterActivities & DeployRunsActivities;

const s3 = stepActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: API_RETRY,
});

/** Copy, verify and delete page through whole buckets: one long activity each, heartbeating a small checkpoint. */
const bulk = stepActivities<S3Activities>({
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '10 seconds',
  retry: WAIT_RETRY,
});

/** Waiting for writers to stop or start: as long as the run allows, heartbeating. */
const waiting = (ms: number) =>
  stepActivities<WriterActivities>({
    startToCloseTimeout: ms + 60_000,
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumAttempts: 5 },
  });

const terraform = stepActivities<TerraformActivities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '30 seconds',
  retry: TOOL_RETRY,
});

interface Found extends SwapFindings {
  writers: BucketWriter[];
}

export async function bucketSwap(input: RunbookInput): Promise<BucketSwapResult> {
  return runRunbook(input, bucketSwapPlan, async (rb: Swap) => {
    const p = rb.params;
    const current = patched(STOPS_WRITERS_AND_RECHECKS);
    if (!current) for (const step of NEWER_STEPS) rb.skip(step, 'run started before this step existed');
    const found = await rb.read('preflight', preflightSummary(p), () => preflight(rb, current), {
      detail: (f) =>
        `s3://${p.source} in ${f.source.settings.region} (${describeSettings(f.source.settings)}); s3://${p.target} ${f.target.exists ? 'exists and is empty' : 'does not exist yet'}` +
        `${f.writers.length ? `; writers ${f.writers.map((w) => `${w.service} ${w.runningCount}/${w.desiredCount}`).join(', ')}` : ''}`,
    });
    if (current) await stopWriters(rb, found.writers);
    const bucket = p.mode === 'terraform' ? await createWithTerraform(rb, found) : await createWithApi(rb, found);
    const copy = { aws: found.aws, source: p.source, target: p.target, multipartThreshold: p.multipartThreshold, partSize: p.partSize };

    reached(rb, 'copying');
    // From here on, a request to the old bucket comes from something the run did not stop.
    const copyStarted = new Date().toISOString();
    const copied = await rb.change(
      'copy-objects',
      `copy every object s3://${p.source} -> s3://${p.target} (${p.concurrency} at a time, in parts above ${formatBytes(p.multipartThreshold)})`,
      () => bulk.copyBucketObjects({ ...copy, concurrency: p.concurrency }),
      {
        detail: describeCopied,
        dryResult: {
          objects: 0,
          bytes: 0,
          copied: 0,
          multipart: 0,
          alreadyCopied: 0,
          vanished: 0,
          pages: 0,
          attempt: 0,
          abortedUploads: 0,
        },
      },
    );

    reached(rb, 'copied');
    const check = { ...copy, ...(current ? { checkContent: true } : {}) };
    const verified = await rb.readUnlessDryRun(
      'verify',
      `compare every key, size and ETag of s3://${p.target} with s3://${p.source}`,
      () => bulk.verifyBucketCopy(check),
      { detail: describeVerified, dryResult: { objects: 0, bytes: 0, multipart: 0 } },
    );
    reached(rb, 'verified');

    if (!current) {
      await rb.checkpoint('delete-old', deleteOldPrompt(p, verified));
    } else {
      await startWriters(rb, found.writers);
      const readers = await rb.read(
        'check-readers',
        `find what shows whether s3://${p.source} or s3://${p.target} is read, and what the delete would drop`,
        () => checkReaders(rb, found, copyStarted),
        { detail: (r) => r.evidence.join('; ') },
      );
      await rb.checkpoint('delete-old', deleteOldPrompt(p, verified, bucket, readers));
      reached(rb, 'rechecking');
      const rechecked = await rb.readUnlessDryRun(
        'recheck',
        `compare s3://${p.target} with s3://${p.source} again: anything changed since the approval and nothing is deleted`,
        () => bulk.verifyBucketCopy({ ...check, purpose: 'recheck' }),
        {
          detail: (v) => `unchanged: ${describeVerified(v)}`,
          dryResult: verified,
          wouldDo: 'would compare both buckets again and delete nothing if anything changed',
        },
      );
      Object.assign(verified, { newestSourceObject: rechecked.newestSourceObject ?? verified.newestSourceObject });
      rb.commit(`deleting s3://${p.source}: what is deleted cannot be put back`);
    }

    reached(rb, 'deleting');
    const deleted = await rb.change(
      'delete-old-bucket',
      `empty s3://${p.source} (every version, 1,000 at a time) and delete it`,
      () =>
        bulk.deleteBucket({
          aws: found.aws,
          bucket: p.source,
          ...(verified.newestSourceObject ? { keepNewerThan: verified.newestSourceObject } : {}),
        }),
      {
        detail: (d) =>
          d.alreadyGone
            ? `s3://${p.source} was already gone`
            : `deleted ${formatCount(d.versionsDeleted)} object versions, then the bucket`,
        dryResult: { bucket: p.source, versionsDeleted: 0, alreadyGone: false },
      },
    );
    return { source: p.source, target: p.target, mode: p.mode, bucket, copied, verified, deleted };
  });
}

async function preflight(rb: Swap, current: boolean): Promise<Found> {
  const p = rb.params;
  const writers = current ? (p.writers ?? []) : [];
  const [found, , inspected, holders] = await Promise.all([
    s3.inspectBucketSwap({ aws: p.aws, source: p.source, target: p.target }),
    p.mode === 'terraform' ? inspectTerraform(requireTerraform(p)) : undefined,
    writers.length ? s3.inspectBucketWriters({ aws: p.aws, writers, buckets: [p.source, p.target] }) : [],
    // One runbook at a time per ECS service: a deploy or restart of a writer must not meet this run's stop.
    Promise.all(writers.map((w) => s3.findServiceHolders({ env: rb.env, service: w.service, except: workflowInfo().workflowId }))),
  ]);
  writers.forEach((w, i) => refuseIfHeld(holders[i]!, `writers.${i}.service`, w.service));
  return { ...found, writers: inspected };
}

/** Seed 002's first step: nothing may write the bucket while it is copied. Undone (started as they were) on any failure before they run again. */
async function stopWriters(rb: Swap, writers: BucketWriter[]): Promise<void> {
  if (!writers.length) {
    rb.skip('stop-writers', 'no writer services configured (writers): make sure nothing writes to the bucket during the copy');
    return;
  }
  const stopped = writers.map((w) => ({ cluster: w.cluster, service: w.service, desiredCount: 0 }));
  await rb.change(
    'stop-writers',
    `stop ${serviceNames(writers)}: desired count to 0, then wait until no task of theirs runs`,
    () => setAndWait(rb.params, stopped),
    {
      undo: {
        summary: `start ${serviceNames(writers)} again as they were (desired counts ${writers.map((w) => w.desiredCount).join(', ')})`,
        run: () => setAndWait(rb.params, asTheyWere(writers)),
      },
      detail: () => `no task of ${serviceNames(writers)} runs`,
      dryResult: [],
    },
  );
}

/** The copy is verified: the writers run again, so the approver can see what they read; from here nothing is undone. */
async function startWriters(rb: Swap, writers: BucketWriter[]): Promise<void> {
  if (!writers.length) {
    rb.skip('start-writers', 'no writer services configured');
  } else {
    await rb.change(
      'start-writers',
      `start ${serviceNames(writers)} again as they were (desired counts ${writers.map((w) => w.desiredCount).join(', ')})`,
      () => setAndWait(rb.params, asTheyWere(writers)),
      { detail: (r) => r.map((w) => `${w.service} ${w.running} running`).join(', '), dryResult: [] },
    );
  }
  rb.commit(`the writers run again${writers.length ? '' : ' (none configured)'}; the buckets are kept as they are`);
}

function asTheyWere(writers: BucketWriter[]): WriterTarget[] {
  return writers.map((w) => ({ cluster: w.cluster, service: w.service, desiredCount: w.desiredCount, taskDefinition: w.taskDefinition }));
}

async function setAndWait(p: BucketSwapParams, targets: WriterTarget[]) {
  const ms = p.writersTimeoutMs ?? 15 * 60_000;
  await s3.setWriters({ aws: p.aws, targets });
  return waiting(ms).waitForWriters({ aws: p.aws, targets, deadline: new Date(Date.now() + ms).toISOString() });
}

interface Readers {
  evidence: string[];
  dropped?: DroppedVersions;
  writers: BucketWriter[];
}

/** What the approver should see besides the counts: who still names which bucket, who reads which, what the delete drops. */
async function checkReaders(rb: Swap, found: Found, since: string): Promise<Readers> {
  const p = rb.params;
  const logging = found.source.settings.logging;
  const [evidence, dropped, writers] = await Promise.all([
    s3.readBucketEvidence({
      aws: found.aws,
      source: p.source,
      target: p.target,
      since,
      ...(logging?.TargetBucket ? { logging: { bucket: logging.TargetBucket, prefix: logging.TargetPrefix ?? '' } } : {}),
    }),
    found.source.settings.versioning === 'Off' ? undefined : bulk.findDroppedVersions({ aws: found.aws, bucket: p.source }),
    found.writers.length ? s3.inspectBucketWriters({ aws: p.aws, writers: found.writers, buckets: [p.source, p.target] }) : [],
  ]);
  return { evidence, writers, ...(dropped ? { dropped } : {}) };
}

function serviceNames(writers: { service: string }[]): string {
  return writers.map((w) => w.service).join(', ');
}

/** The directory is initialised and the workspace exists; reading the state proves both. */
async function inspectTerraform(t: TerraformParams): Promise<void> {
  await terraform.terraformInit(terraformDir(t));
  await terraform.terraformStateList(terraformDir(t));
}

async function createWithApi(rb: Swap, found: SwapFindings): Promise<CreatedBucket> {
  const p = rb.params;
  for (const step of TERRAFORM_STEPS) rb.skip(step, 'mode aws: the bucket is created through the S3 API');
  reached(rb, 'creating');
  return rb.change(
    'create-bucket',
    `create s3://${p.target} in ${found.source.settings.region} like s3://${p.source} (${describeSettings(found.source.settings)})`,
    () => s3.createBucketLike({ aws: found.aws, bucket: p.target, like: found.source.settings, source: p.source, whenExists: 'apply' }),
    {
      detail: describeCreated,
      dryResult: { bucket: p.target, created: false, applied: [], notCopied: [] },
    },
  );
}

/**
 * The seed's Terraform steps: detach the old bucket from the state, plan the
 * new one alone, refuse a plan that would destroy anything else, apply exactly
 * the plan that was checked, and read the bucket's name from the outputs.
 */
async function createWithTerraform(rb: Swap, found: SwapFindings): Promise<CreatedBucket> {
  const p = rb.params;
  const t = requireTerraform(p);
  const where = terraformDir(t);
  // A name: the activities keep it in this run's own folder, outside the Terraform directory.
  const planFile = `bucket-swap-${p.target}.tfplan`;
  rb.skip('create-bucket', `mode terraform: Terraform creates the bucket (${t.address})`);

  reached(rb, 'detaching');
  await rb.change(
    'detach-old-state',
    `terraform state rm ${t.address} in workspace ${t.workspace}, so Terraform never deletes s3://${p.source}`,
    () => terraform.terraformStateRm({ ...where, address: t.address }),
    {
      detail: (r) =>
        r.removed
          ? `removed ${t.address} from the ${t.workspace} state`
          : `${t.address} was not in the ${t.workspace} state (detached before)`,
      dryResult: { removed: false },
    },
  );
  reached(rb, 'planning');

  try {
    const plan = await rb.change(
      'plan-new-bucket',
      `terraform plan -target=${t.address} -out=${planFile}`,
      () => terraform.terraformPlan({ ...where, targets: [t.address], planFile }),
      { detail: describePlan, dryResult: { changes: [], outputs: {}, planFile, sha256: '' } },
    );

    await rb.readUnlessDryRun(
      'guard-plan',
      `check that ${planFile} destroys or replaces nothing but ${t.address} (${plan.changes.length} planned changes)`,
      () =>
        terraform.terraformGuardPlan({
          ...where,
          planFile,
          allow: [t.address],
          require: [t.address],
          expectOutput: { name: t.output, value: p.target },
        }),
      {
        detail: (checked) => `accepted: ${describePlan(checked)}`,
        wouldDo: `would refuse the plan if it destroyed or replaced anything but ${t.address}`,
      },
    );

    reached(rb, 'applying');
    return await rb.change(
      'apply-plan',
      `terraform apply ${planFile}, then check that output ${t.output} names s3://${p.target}`,
      async () => {
        await terraform.terraformApply({ ...where, planFile, sha256: plan.sha256 });
        const { values } = await terraform.terraformOutputs(where);
        if (values[t.output] !== p.target) {
          throw ApplicationFailure.create({
            type: 'UnexpectedBucketName',
            message: `terraform output ${t.output} is '${String(values[t.output])}', not the target '${p.target}'`,
            nonRetryable: true,
          });
        }
        // A bucket Terraform made is left as Terraform made it; where none exists (a
        // terraform_data stand-in for the bucket), it is made like the source.
        return s3.createBucketLike({ aws: found.aws, bucket: p.target, like: found.source.settings, source: p.source, whenExists: 'keep' });
      },
      { detail: describeCreated, dryResult: { bucket: p.target, created: false, applied: [], notCopied: [] } },
    );
  } finally {
    // The saved plan holds every variable's value: never left behind, whether applied, refused or cancelled.
    if (!rb.dryRun) await CancellationScope.nonCancellable(() => terraform.terraformDiscardPlan({ planFile }));
  }
}

function terraformDir(t: TerraformParams) {
  return { dir: t.dir, workspace: t.workspace, ...(t.cliConfig ? { cliConfig: t.cliConfig } : {}) };
}

function requireTerraform(p: BucketSwapParams): TerraformParams {
  if (!p.terraform)
    throw ApplicationFailure.create({
      type: FailureType.invalidInput,
      message: 'terraform: required in mode terraform',
      nonRetryable: true,
    });
  return p.terraform;
}

type Stage = 'detaching' | 'planning' | 'applying' | 'creating' | 'copying' | 'copied' | 'verified' | 'rechecking' | 'deleting';

/** How far the run got: from here on a failure says what is kept where (the buckets are never undone). */
function reached(rb: Swap, stage: Stage): void {
  rb.keptOnFailure(keptAt(rb.params, stage));
}

function keptAt({ source, target, terraform: t }: BucketSwapParams, stage: Stage): string {
  // Before apply, the old bucket's address is out of the state; after it, the address is the new bucket.
  const detached = t
    ? ` ${t.address} stays out of the Terraform state (${t.workspace}), so Terraform cannot delete s3://${source}; \`terraform import\` it to take it back.`
    : '';
  const managed = t ? ` Terraform manages s3://${target} as ${t.address}; s3://${source} is out of its state.` : '';
  switch (stage) {
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
    case 'rechecking':
      return `Nothing was deleted: both buckets are kept as they are now; s3://${target} may no longer match s3://${source} (empty it before running again).${managed}`;
    case 'deleting':
      // The point of no return: part of the old bucket may be gone, so the run is failed, never rolled back.
      return (
        `s3://${target} holds the verified copy, checked again just before deleting; s3://${source} may be partly emptied: ` +
        `only versions that were verified were deleted, anything written later is kept in it. See what is left with \`aws s3api list-object-versions --bucket ${source}\`, then run again or delete it by hand.${managed}`
      );
  }
}

function preflightSummary(p: BucketSwapParams): string {
  const tf = p.mode === 'terraform' && p.terraform ? `; terraform init in ${p.terraform.dir}, workspace ${p.terraform.workspace}` : '';
  return `check s3://${p.source} is readable and s3://${p.target} absent or empty${tf}`;
}

function describeSettings(s: BucketSettings): string {
  const parts = [
    `versioning ${s.versioning.toLowerCase()}`,
    s.encryption
      ? `encryption ${s.encryption.map((r) => r.ApplyServerSideEncryptionByDefault?.SSEAlgorithm ?? '?').join('+')}`
      : 'no default encryption',
    s.publicAccessBlock ? 'public access blocked' : 'no public access block',
    `${s.tags.length} tags`,
    s.policy ? 'a bucket policy' : '',
    s.ownership ? `ownership ${s.ownership}` : '',
    s.acl ? `an ACL of ${s.acl.grants.length} grants` : '',
    s.lifecycle ? `${s.lifecycle.length} lifecycle rules` : '',
    s.cors ? `${s.cors.length} CORS rules` : '',
    s.logging ? `access logs to s3://${s.logging.TargetBucket}/${s.logging.TargetPrefix ?? ''}` : '',
    s.notification ? 'event notifications' : '',
    s.replication ? 'replication' : '',
    s.objectLock ? 'object lock' : '',
    s.requesterPays ? 'requester pays' : '',
  ].filter(Boolean);
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
  return (
    `${formatCount(c.objects)} objects (${formatBytes(c.bytes)}): ${formatCount(c.copied)} copied whole, ${formatCount(c.multipart)} in parts` +
    `${resumed.map((r) => `, ${r}`).join('')}${c.attempt > 1 ? `; resumed at attempt ${c.attempt} from the last checkpoint` : ''}`
  );
}

function describeVerified(v: VerifiedCopy): string {
  return `${formatCount(v.objects)} objects (${formatBytes(v.bytes)}) match${v.multipart ? `; ${contentNote(v)}` : ''}`;
}

/**
 * What the approver sees: the counts verified, what the delete drops, what the
 * new bucket lacks, who still names the old bucket, the evidence of reads, and
 * what each decision does.
 */
function deleteOldPrompt(p: BucketSwapParams, v: VerifiedCopy, bucket?: CreatedBucket, readers?: Readers): string {
  const lines = [
    `s3://${p.target} holds a verified copy of all ${formatCount(v.objects)} objects (${formatBytes(v.bytes)}) of s3://${p.source}: ` +
      `keys, sizes and ETags match${v.multipart ? ` (${contentNote(v)})` : ''}.`,
  ];
  if (readers) {
    const d = readers.dropped;
    lines.push(
      d && (d.noncurrent || d.deleteMarkers)
        ? `Dropped by the delete: s3://${p.source} also holds ${formatCount(d.noncurrent)} older versions (of keys such as ${d.keys.map((k) => `'${k}'`).join(', ')}) and ${formatCount(d.deleteMarkers)} delete markers; the copy carries only the current version of each object.`
        : `Dropped by the delete: nothing; s3://${p.source} holds no older versions.`,
    );
  }
  if (bucket) {
    lines.push(
      bucket.notCopied.length
        ? `Not carried to s3://${p.target}: ${bucket.notCopied.join('; ')}.`
        : `s3://${p.target} has every setting of s3://${p.source}${bucket.applied.length ? ` (${bucket.applied.join(', ')})` : ''}.`,
    );
  }
  if (readers) {
    const writers = readers.writers;
    lines.push(
      writers.length
        ? `Writers ${serviceNames(writers)} were stopped for the copy and run again as before; their configuration names: ${writers.map((w) => describeNames(w, p)).join('; ')}.`
        : 'No writer services were configured (writers), so none was stopped or checked.',
    );
    lines.push(`Do the application and the CDN now read s3://${p.target}? Evidence the runbook can read: ${readers.evidence.join('; ')}.`);
    lines.push(`Right before deleting, both buckets are compared again: if anything changed since this approval, nothing is deleted.`);
  }
  lines.push(`Approve to delete s3://${p.source} with every version in it; reject to keep both buckets.`);
  return lines.join('\n');
}

function describeNames(w: BucketWriter, p: BucketSwapParams): string {
  if (!w.names.length) return `${w.service}: neither bucket in its container variables`;
  return `${w.service}: ${w.names.map((n) => `${n.variable} names s3://${n.bucket}${n.bucket === p.source ? ' (the OLD bucket)' : ' (the new bucket)'}`).join(', ')}`;
}

function contentNote(v: VerifiedCopy): string {
  return v.contentChecked !== undefined
    ? `${multipartCopies(v.multipart)}; content checked where ETags differ by design (${formatCount(v.contentChecked)} ${v.contentChecked === 1 ? 'object' : 'objects'}, MD5 of each part)`
    : `${multipartCopies(v.multipart)} by size and part count`;
}

function multipartCopies(n: number): string {
  return `${formatCount(n)} multipart ${n === 1 ? 'copy' : 'copies'}`;
}

function describePlan(plan: PlanSummary): string {
  if (!plan.changes.length) return 'no changes';
  return plan.changes.map((c) => `${c.actions.join('+')} ${c.address}`).join(', ');
}
