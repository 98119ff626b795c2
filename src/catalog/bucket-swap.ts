/** Catalog entry of `bucket-swap` (seed 002, "S3 Migration"). */
import { z } from 'zod';
import { bucketNameProblem } from '../activities/bucket-names.js';
import { byteSizeSchema } from '../bytes.js';
import type { EnvironmentConfig } from '../config.js';
import { durationSchema } from '../duration.js';
import { formatBytes } from '../format.js';
import { bucketSwapPlan, type BucketSwapParams } from '../workflows/bucket-swap.js';
import { defineRunbook } from './definition.js';
import { terraformDirName, terraformDirPath, terraformDirProblem } from './terraform-dir.js';

const bucketName = z.string().superRefine((name, ctx) => {
  const problem = bucketNameProblem(name);
  if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${problem} (S3 bucket naming rules)` });
});

/** CopyObject copies at most 5 GiB; above that only a multipart copy can. */
const MAX_SINGLE_COPY = 5 * 2 ** 30;

/** A name the environment's config gives a meaning to; never a path. */
const ecsName = z.string().regex(/^[a-zA-Z0-9_-]{1,255}$/, 'must be an ECS name: letters, digits, hyphens and underscores');

const terraformParams = z
  .object({
    dir: terraformDirName,
    workspace: z.string().min(1).default('default').describe('Terraform workspace holding the bucket'),
    address: z
      .string()
      .min(1)
      .describe('resource address of the bucket, e.g. aws_s3_bucket.static: removed from the state, then planned and applied alone'),
    output: z.string().min(1).default('bucket_name').describe('Terraform output that names the new bucket after apply (must equal target)'),
  })
  .strict();

const params = z
  .object({
    source: bucketName.describe('the bucket to move away from; deleted only after the copy is verified and delete-old is approved'),
    target: bucketName.describe('the new bucket; must not exist yet, or be empty'),
    mode: z
      .enum(['terraform', 'aws'])
      .default('aws')
      .describe(
        "who creates the new bucket: Terraform (state rm, targeted plan, plan guard, apply) or this run through the S3 API, copying the source's region, versioning, encryption, public access block and tags",
      ),
    terraform: terraformParams
      .optional()
      .describe(
        'mode terraform: dir (a name from terraform.dirs of the environment), workspace (default "default"), address (e.g. aws_s3_bucket.static), ' +
          'output naming the bucket (default "bucket_name"); e.g. --set terraform.dir=infra --set terraform.address=aws_s3_bucket.static',
      ),
    writers: z
      .array(
        z
          .object({
            cluster: ecsName.describe('ECS cluster of the writer service'),
            service: ecsName.describe('ECS service that can write to the bucket'),
          })
          .strict(),
      )
      .default([])
      .describe(
        'every ECS service that can write to the old bucket: stopped before the copy (seed 002), started again as they were after verification or on any failure; e.g. --set writers.0.cluster=app --set writers.0.service=api',
      ),
    writersTimeout: durationSchema.default('15m').describe('how long the writers may take to stop or start'),
    concurrency: z.number().int().min(1).max(256).default(32).describe('server-side copies in flight at once'),
    multipartThreshold: byteSizeSchema.default('5GiB').describe('objects larger than this are copied in parts (UploadPartCopy), e.g. 5GiB'),
    partSize: byteSizeSchema
      .default('512MiB')
      .describe('part size of those copies, 5MiB to 5GiB (raised when an object would need more than 10,000 parts)'),
  })
  // A mistyped --set key must not silently fall back to a default bucket.
  .strict()
  .superRefine((p, ctx) => {
    if (p.source === p.target)
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['target'], message: `must differ from source (both are '${p.source}')` });
    if (p.mode === 'terraform' && !p.terraform)
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['terraform'], message: 'required in mode terraform (dir, workspace, address)' });
    if (p.multipartThreshold > MAX_SINGLE_COPY)
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['multipartThreshold'],
        message: 'at most 5GiB: CopyObject copies no larger object',
      });
    if (p.partSize < 5 * 2 ** 20 || p.partSize > MAX_SINGLE_COPY)
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['partSize'], message: 'must be between 5MiB and 5GiB (S3 part limits)' });
  });

type Params = z.infer<typeof params>;

function check(p: Params, env: EnvironmentConfig): string | null {
  return p.terraform ? terraformDirProblem('terraform.dir', p.terraform.dir, env) : null;
}

export const bucketSwapRunbook = defineRunbook({
  name: 'bucket-swap',
  workflowType: 'bucketSwap',
  description:
    'copy an S3 bucket into a new one (made by Terraform or directly), verify every object, and delete the old bucket once approved',
  params,
  plan: bucketSwapPlan,
  // The old bucket is what the run holds: two swaps of one bucket must never overlap.
  target: (p) => p.source,
  // Its writers are stopped for the run: no deploy or restart of them may start meanwhile.
  services: (p) => p.writers.map((w) => w.service),
  summary: (p, env) =>
    `move s3://${p.source} to a new bucket s3://${p.target} on ${env.name} ` +
    `(${p.mode === 'terraform' ? `made by Terraform at ${p.terraform?.address} in ${p.terraform?.dir}` : 'made like the old one'}): ` +
    `${p.writers.length ? `stop ${p.writers.map((w) => w.service).join(', ')}, ` : ''}` +
    `copy every object (${p.concurrency} at a time, in parts above ${formatBytes(p.multipartThreshold)}), verify, then delete the old bucket once approved`,
  check,
  prepare: (p, env): BucketSwapParams => ({
    aws: env.aws,
    source: p.source,
    target: p.target,
    mode: p.mode,
    ...(p.terraform
      ? {
          terraform: {
            ...p.terraform,
            dirName: p.terraform.dir,
            dir: terraformDirPath(p.terraform.dir, env),
            ...(env.terraform?.cliConfig ? { cliConfig: env.terraform.cliConfig } : {}),
          },
        }
      : {}),
    writers: p.writers,
    writersTimeoutMs: p.writersTimeout,
    concurrency: p.concurrency,
    multipartThreshold: p.multipartThreshold,
    partSize: p.partSize,
  }),
});

export type BucketSwapInputs = z.input<typeof params>;
