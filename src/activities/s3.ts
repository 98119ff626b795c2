/**
 * S3: inspect two buckets before a swap, create a bucket like another,
 * copy and verify every object (s3-copy.ts, s3-verify.ts), delete a bucket
 * with all its versions. Every activity can run again after a lost result:
 * creating finds the bucket made, deleting finds it gone.
 */
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetBucketLocationCommand,
  HeadBucketCommand,
  ListObjectVersionsCommand,
  type BucketLocationConstraint,
  type ListObjectVersionsCommandOutput,
  type ObjectVersion,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { abortable, awsFailure, callAws, clientFactory, invalidInput, type AwsConnection, type AwsDeps } from './aws.js';
import { bucketNameProblem } from './bucket-names.js';
import { createBucketUserActivities } from './bucket-users.js';
import {
  applySettings,
  errorName,
  httpStatus,
  missingSettings,
  readSettings,
  type AppliedSettings,
  type BucketSettings,
} from './s3-bucket-settings.js';
import { copyObjects, type CopyObjectsArgs, type CopyResult } from './s3-copy.js';
import { verifyCopy, type VerifiedCopy, type VerifyCopyArgs } from './s3-verify.js';
import { formatCount } from '../format.js';

export type { BucketSettings, CopyObjectsArgs, CopyResult, VerifiedCopy, VerifyCopyArgs };

export interface BucketPair {
  aws: AwsConnection;
  source: string;
  target: string;
}

export interface SwapFindings {
  source: { bucket: string; settings: BucketSettings };
  /** Whether the target exists already (then it is empty: a non-empty target is refused). */
  target: { bucket: string; exists: boolean };
  /** The connection in the buckets' region, for every later S3 activity. */
  aws: AwsConnection;
}

export interface CreateBucketArgs {
  aws: AwsConnection;
  bucket: string;
  like: BucketSettings;
  /** The bucket the settings were read from: its name in the policy (and a self-logging target) becomes the new one's. */
  source?: string;
  /**
   * `apply`: a bucket found existing gets the settings too (this run made it
   * and lost the result, or the operator made it empty for the run).
   * `keep`: a bucket found existing is left as it is (Terraform made it and owns its settings).
   */
  whenExists: 'apply' | 'keep';
}

export interface CreatedBucket extends AppliedSettings {
  bucket: string;
  created: boolean;
}

export interface DeleteBucketArgs {
  aws: AwsConnection;
  bucket: string;
  /**
   * Versions last modified after this time were written after the copy was
   * verified: they are kept, with the bucket, and the step fails naming them.
   */
  keepNewerThan?: string;
}

/** What deleting a versioned bucket loses: the copy carries only the current version of each key. */
export interface DroppedVersions {
  /** Older (noncurrent) versions of objects. */
  noncurrent: number;
  deleteMarkers: number;
  /** Keys with older versions, the first few. */
  keys: string[];
}

export interface DeletedBucket {
  bucket: string;
  /** Object versions (or, unversioned, objects) and delete markers removed. */
  versionsDeleted: number;
  /** The bucket was already gone (a retry after a lost result). */
  alreadyGone: boolean;
}

export function createS3Activities(deps: AwsDeps) {
  const clients = clientFactory(deps);
  const s3 = (aws: AwsConnection) => clients(aws).s3;

  return {
    // The services that write the bucket and the evidence of who reads it (bucket-users.ts).
    ...createBucketUserActivities(deps),

    /**
     * Preflight of a swap, changing nothing: names valid and different, the
     * source exists and can be listed, the target is absent or empty. Every
     * refusal is `InvalidInput` naming the field.
     */
    async inspectBucketSwap(pair: BucketPair): Promise<SwapFindings> {
      refuseInvalidNames(pair);
      const region = await bucketRegion(s3(pair.aws), pair.source);
      const aws = { ...pair.aws, region };
      const [settings, targetExists] = await Promise.all([
        readSettings(s3(aws), pair.source, region),
        checkTargetUsable(s3(aws), pair.target),
        checkReadable(s3(aws), pair.source),
      ]);
      return { source: { bucket: pair.source, settings }, target: { bucket: pair.target, exists: targetExists }, aws };
    },

    /** Creates the bucket in the source's region with its settings; finding it made is success. */
    async createBucketLike(args: CreateBucketArgs): Promise<CreatedBucket> {
      const client = s3(args.aws);
      // In us-east-1, CreateBucket of one's own existing bucket answers 200: "keep" must look first.
      const exists = args.whenExists === 'keep' && (await checkTargetUsable(client, args.bucket));
      const created = !exists && (await createBucket(client, args.bucket, args.like.region, Boolean(args.like.objectLock)));
      if (!created && args.whenExists === 'keep') {
        const made = await readSettings(client, args.bucket, args.like.region);
        return {
          bucket: args.bucket,
          created,
          applied: [],
          notCopied: ['settings: the bucket existed already (made by Terraform) and keeps its own', ...missingSettings(args.like, made)],
        };
      }
      return { bucket: args.bucket, created, ...(await applySettings(client, args.bucket, args.like, args.source ?? args.bucket)) };
    },

    async copyBucketObjects(args: CopyObjectsArgs): Promise<CopyResult> {
      return copyObjects(s3(args.aws), args);
    },

    async verifyBucketCopy(args: VerifyCopyArgs): Promise<VerifiedCopy> {
      return verifyCopy(s3(args.aws), args);
    },

    /** Counts the versions only the old bucket holds (noncurrent versions and delete markers): deleting it drops them. */
    async findDroppedVersions(args: { aws: AwsConnection; bucket: string }): Promise<DroppedVersions> {
      const client = s3(args.aws);
      const dropped: DroppedVersions = { noncurrent: 0, deleteMarkers: 0, keys: [] };
      for await (const page of versionPages(client, args.bucket)) {
        for (const version of page.Versions ?? []) {
          if (version.IsLatest) continue;
          dropped.noncurrent++;
          if (dropped.keys.length < NAMED_IN_ERRORS && dropped.keys.at(-1) !== version.Key) dropped.keys.push(version.Key!);
        }
        dropped.deleteMarkers += page.DeleteMarkers?.length ?? 0;
        Context.current().heartbeat();
      }
      return dropped;
    },

    /**
     * Empties the bucket 1,000 versions at a time (all versions and delete
     * markers: a versioned bucket cannot be deleted with any left), then deletes it.
     */
    async deleteBucket(args: DeleteBucketArgs): Promise<DeletedBucket> {
      return deleteBucket(s3(args.aws), args);
    },
  };
}

export type S3Activities = ReturnType<typeof createS3Activities>;

function refuseInvalidNames(pair: BucketPair): void {
  for (const field of ['source', 'target'] as const) {
    const problem = bucketNameProblem(pair[field]);
    if (problem) throw invalidInput(field, `${problem} (S3 bucket naming rules)`);
  }
  if (pair.source === pair.target) throw invalidInput('target', `must differ from source (both are '${pair.source}')`);
}

async function bucketRegion(s3: S3Client, bucket: string): Promise<string> {
  try {
    const { LocationConstraint } = await s3.send(new GetBucketLocationCommand({ Bucket: bucket }), abortable());
    // S3 reports us-east-1 as no constraint, and eu-west-1 by its legacy name.
    if (!LocationConstraint) return 'us-east-1';
    return LocationConstraint === 'EU' ? 'eu-west-1' : LocationConstraint;
  } catch (err) {
    if (errorName(err) === 'NoSuchBucket' || httpStatus(err) === 404) throw invalidInput('source', `no bucket named '${bucket}'`);
    if (httpStatus(err) === 403) throw invalidInput('source', `s3://${bucket} exists but these credentials may not read it`);
    throw awsFailure(err, `find the region of s3://${bucket}`);
  }
}

async function checkReadable(s3: S3Client, bucket: string): Promise<void> {
  try {
    await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, MaxKeys: 1 }), abortable());
  } catch (err) {
    if (httpStatus(err) === 403) throw invalidInput('source', `s3://${bucket} exists but these credentials may not list it`);
    throw awsFailure(err, `list s3://${bucket}`);
  }
}

/** True when the target exists (and is empty); refuses a target that holds anything or belongs to someone else. */
async function checkTargetUsable(s3: S3Client, bucket: string): Promise<boolean> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }), abortable());
  } catch (err) {
    const status = httpStatus(err);
    if (status === 404) return false;
    if (status === 403) throw invalidInput('target', `a bucket named '${bucket}' exists and belongs to someone else; choose another name`);
    if (status === 301) throw invalidInput('target', `a bucket named '${bucket}' exists in another region`);
    throw awsFailure(err, `look for s3://${bucket}`);
  }
  const answer = await callAws(`list s3://${bucket}`, () =>
    s3.send(new ListObjectVersionsCommand({ Bucket: bucket, MaxKeys: 1 }), abortable()),
  );
  const first = answer.Versions?.[0]?.Key ?? answer.DeleteMarkers?.[0]?.Key;
  if (first !== undefined) {
    throw invalidInput('target', `s3://${bucket} already holds objects (e.g. '${first}'); the new bucket must be absent or empty`);
  }
  return true;
}

/** True when this call created the bucket; false when it was there (ours). */
async function createBucket(s3: S3Client, bucket: string, region: string, objectLock: boolean): Promise<boolean> {
  try {
    await s3.send(
      new CreateBucketCommand({
        Bucket: bucket,
        // Object lock can only be switched on here, when the bucket is made.
        ...(objectLock ? { ObjectLockEnabledForBucket: true } : {}),
        // us-east-1 is the one region that takes no location constraint.
        ...(region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } }),
      }),
      abortable(),
    );
    return true;
  } catch (err) {
    if (errorName(err) === 'BucketAlreadyOwnedByYou') return false;
    if (errorName(err) === 'BucketAlreadyExists') throw invalidInput('target', `the name '${bucket}' is taken by someone else's bucket`);
    throw awsFailure(err, `create s3://${bucket}`);
  }
}

const DELETE_BATCH = 1000;
const NAMED_IN_ERRORS = 10;

async function deleteBucket(s3: S3Client, args: DeleteBucketArgs): Promise<DeletedBucket> {
  const context = Context.current();
  const resumed = context.info.heartbeatDetails as { versionsDeleted: number } | undefined;
  let versionsDeleted = resumed?.versionsDeleted ?? 0;
  const isNewer = (v: ObjectVersion) => Boolean(args.keepNewerThan && v.LastModified && v.LastModified.toISOString() > args.keepNewerThan);
  try {
    if (args.keepNewerThan && versionsDeleted === 0) {
      // Writes after verification mean something still uses the old bucket: refuse before deleting anything.
      const newer = await findVersions(s3, args.bucket, isNewer);
      if (newer.length) throw writtenAfterVerification(args, newer, 'nothing was deleted');
    }
    const keptNewer: string[] = [];
    for await (const page of versionPages(s3, args.bucket)) {
      const versions = page.Versions ?? [];
      keptNewer.push(...versions.filter(isNewer).map((v) => v.Key!));
      const doomed = [
        ...versions.filter((v) => !isNewer(v)),
        // Delete markers hold no data: removing one loses nothing.
        ...(page.DeleteMarkers ?? []),
      ].map((v) => ({ Key: v.Key!, ...(v.VersionId && v.VersionId !== 'null' ? { VersionId: v.VersionId } : {}) }));
      if (doomed.length) {
        await deleteBatch(s3, args.bucket, doomed);
        versionsDeleted += doomed.length;
        context.heartbeat({ versionsDeleted });
      }
    }
    if (keptNewer.length)
      throw writtenAfterVerification(args, keptNewer, 'the verified versions were deleted, these were kept with the bucket');
    await s3.send(new DeleteBucketCommand({ Bucket: args.bucket }), abortable());
  } catch (err) {
    if (errorName(err) === 'NoSuchBucket') return { bucket: args.bucket, versionsDeleted, alreadyGone: true };
    // BucketNotEmpty: someone wrote to it since it was emptied; the retry empties it again.
    throw awsFailure(err, `delete s3://${args.bucket}`);
  }
  return { bucket: args.bucket, versionsDeleted, alreadyGone: false };
}

/**
 * Every page of object versions and delete markers. Its markers are positions
 * in the listing, not objects: they stay valid while the versions before them are deleted.
 */
async function* versionPages(s3: S3Client, bucket: string): AsyncGenerator<ListObjectVersionsCommandOutput> {
  let markers: { KeyMarker?: string; VersionIdMarker?: string } = {};
  for (;;) {
    const page = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, MaxKeys: DELETE_BATCH, ...markers }), abortable());
    yield page;
    if (!page.IsTruncated) return;
    markers = { KeyMarker: page.NextKeyMarker, VersionIdMarker: page.NextVersionIdMarker };
  }
}

/** Keys of the versions that match, at most as many as an error names. */
async function findVersions(s3: S3Client, bucket: string, matches: (v: ObjectVersion) => boolean): Promise<string[]> {
  const found: string[] = [];
  for await (const page of versionPages(s3, bucket)) {
    found.push(...(page.Versions ?? []).filter(matches).map((v) => v.Key!));
    Context.current().heartbeat();
  }
  return found;
}

async function deleteBatch(s3: S3Client, bucket: string, objects: { Key: string; VersionId?: string }[]): Promise<void> {
  const answer = await callAws(`delete ${formatCount(objects.length)} object versions of s3://${bucket}`, () =>
    s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }), abortable()),
  );
  const errors = answer.Errors ?? [];
  if (errors.length) {
    const named = errors
      .slice(0, NAMED_IN_ERRORS)
      .map((e) => `'${e.Key}' ${e.Code}: ${e.Message}`)
      .join('; ');
    throw ApplicationFailure.create({
      type: 'DeleteRefused',
      message: `S3 refused to delete ${errors.length} object versions of s3://${bucket}: ${named}`,
      nonRetryable: false,
    });
  }
}

function writtenAfterVerification(args: DeleteBucketArgs, keys: string[], outcome: string): ApplicationFailure {
  const named = keys
    .slice(0, NAMED_IN_ERRORS)
    .map((k) => `'${k}'`)
    .join(', ');
  return ApplicationFailure.create({
    type: 'WrittenAfterVerification',
    message:
      `s3://${args.bucket} was not deleted: ${formatCount(keys.length)} object versions were written to it after the copy was verified ` +
      `(${named}${keys.length > NAMED_IN_ERRORS ? ', ...' : ''}); ${outcome}. Find what still writes there, copy those objects to the new bucket, then delete the old one.`,
    nonRetryable: true,
  });
}
