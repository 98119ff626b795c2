/**
 * Verifying a copy: both buckets are listed in lockstep (S3 lists keys in the
 * same order everywhere), so every key is checked for presence on both sides,
 * size and ETag, with two pages in memory per side whatever the size. Where
 * the ETags cannot be compared (a multipart copy's ETag depends on how it was
 * cut into parts), the source's bytes are read once and the ETag the copy
 * must have is computed from them (s3-content.ts): content, not size alone.
 *
 * The same check runs twice: after the copy (`verify`), and again right
 * before the old bucket is deleted (`recheck`), which refuses if anything
 * changed since the approval.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { AwsConnection } from './aws.js';
import { contentMismatch } from './s3-content.js';
import { compareKeys, copyMismatch, listEntries, plannedParts, type CopyPlan, type ObjectEntry } from './s3-objects.js';
import { formatBytes, formatCount } from '../format.js';
import { passTestGate } from './test-gates.js';

export interface VerifyCopyArgs extends CopyPlan {
  aws: AwsConnection;
  source: string;
  target: string;
  /**
   * `recheck`: the check right before deleting the source, after the approval;
   * a difference then means something changed since, and the failure says so.
   */
  purpose?: 'verify' | 'recheck';
  /**
   * Compare content where ETags cannot be compared (multipart copies) by
   * reading the source's bytes. Unset in runs started before it existed.
   */
  checkContent?: boolean;
}

export interface VerifiedCopy {
  objects: number;
  bytes: number;
  /** Objects copied in parts (their ETags differ from the source's by design). */
  multipart: number;
  /** Objects whose ETags could not be compared, checked by reading the source's content (see s3-content.ts). */
  contentChecked?: number;
  /** Last-modified time of the newest source object verified: anything newer was written after the copy. */
  newestSourceObject?: string;
}

export interface Mismatch {
  key: string;
  problem: string;
}

/** Heartbeated as keys are compared: a retried attempt resumes after the last key compared. */
interface VerifyProgress extends VerifiedCopy {
  after?: string;
  mismatches: number;
  /** The first mismatches found, to name in the failure. */
  examples: Mismatch[];
}

const EXAMPLES_KEPT = 20;
const HEARTBEAT_EVERY_KEYS = 500;

export async function verifyCopy(s3: S3Client, args: VerifyCopyArgs): Promise<VerifiedCopy> {
  const context = Context.current();
  const progress: VerifyProgress = (context.info.heartbeatDetails as VerifyProgress | undefined) ?? {
    objects: 0,
    bytes: 0,
    multipart: 0,
    mismatches: 0,
    examples: [],
  };
  await passTestGate(`before-${args.purpose ?? 'verify'}.${args.target}`, progress);
  const plan = { multipartThreshold: args.multipartThreshold, partSize: args.partSize };
  const mismatch = (key: string, problem: string) => {
    progress.mismatches++;
    if (progress.examples.length < EXAMPLES_KEPT) progress.examples.push({ key, problem });
  };

  const sources = listEntries(s3, args.source, progress.after);
  const copies = listEntries(s3, args.target, progress.after);
  let source = await sources.next();
  let copy = await copies.next();
  let compared = 0;
  while (!source.done || !copy.done) {
    const order = source.done ? 1 : copy.done ? -1 : compareKeys(source.value.key, copy.value.key);
    if (order < 0) {
      const entry = source.value as ObjectEntry;
      mismatch(entry.key, 'missing in the copy');
      count(progress, entry, plan);
      progress.after = entry.key;
      source = await sources.next();
    } else if (order > 0) {
      const entry = copy.value as ObjectEntry;
      mismatch(entry.key, 'in the copy but not in the source');
      progress.after = entry.key;
      copy = await copies.next();
    } else {
      const entry = source.value as ObjectEntry;
      const copied = copy.value as ObjectEntry;
      let problem = copyMismatch(entry, copied, plan);
      if (!problem && args.checkContent && entry.etag !== copied.etag) {
        problem = await contentMismatch(s3, args.source, entry, copied, plan, () => context.heartbeat(progress));
        progress.contentChecked = (progress.contentChecked ?? 0) + 1;
      }
      if (problem) mismatch(entry.key, problem);
      count(progress, entry, plan);
      progress.after = entry.key;
      [source, copy] = await Promise.all([sources.next(), copies.next()]);
    }
    if (++compared % HEARTBEAT_EVERY_KEYS === 0) context.heartbeat(progress);
  }

  if (progress.mismatches > 0) throw copyDiffers(args, progress);
  const { objects, bytes, multipart, contentChecked, newestSourceObject } = progress;
  return {
    objects,
    bytes,
    multipart,
    ...(contentChecked !== undefined ? { contentChecked } : {}),
    ...(newestSourceObject ? { newestSourceObject } : {}),
  };
}

function count(progress: VerifyProgress, entry: ObjectEntry, plan: CopyPlan): void {
  progress.objects++;
  progress.bytes += entry.size;
  if (plannedParts(entry.size, plan) > 0) progress.multipart++;
  if (entry.lastModified && (!progress.newestSourceObject || entry.lastModified > progress.newestSourceObject)) {
    progress.newestSourceObject = entry.lastModified;
  }
}

function copyDiffers(args: VerifyCopyArgs, progress: VerifyProgress): ApplicationFailure {
  const named = progress.examples.map((m) => `'${m.key}' ${m.problem}`).join('; ');
  const more =
    progress.mismatches > progress.examples.length ? `; and ${formatCount(progress.mismatches - progress.examples.length)} more` : '';
  if (args.purpose === 'recheck') {
    return ApplicationFailure.create({
      type: 'ChangedSinceApproval',
      message:
        `s3://${args.source} was not deleted: since the copy was verified and approved, ${formatCount(progress.mismatches)} objects differ between ` +
        `s3://${args.source} and s3://${args.target}: ${named}${more}. Something still writes to one of them; stop it, copy again, and run again`,
      nonRetryable: true,
      details: [progress.examples],
    });
  }
  return ApplicationFailure.create({
    type: 'CopyMismatch',
    message:
      `s3://${args.target} is not an exact copy of s3://${args.source}: ${formatCount(progress.mismatches)} of ` +
      `${formatCount(progress.objects)} objects (${formatBytes(progress.bytes)}) differ: ${named}${more}`,
    nonRetryable: true,
    details: [progress.examples],
  });
}
