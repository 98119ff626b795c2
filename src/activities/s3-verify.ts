/**
 * Verifying a copy from the listings alone: both buckets are listed in
 * lockstep (S3 lists keys in the same order everywhere), so every key is
 * checked for presence on both sides, size and ETag (see `copyMismatch` for
 * multipart copies), with two pages in memory per side whatever the size.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { AwsConnection } from './aws.js';
import { compareKeys, copyMismatch, listEntries, plannedParts, type CopyPlan, type ObjectEntry } from './s3-objects.js';
import { formatBytes, formatCount } from '../format.js';
import { passTestGate } from './test-gates.js';

export interface VerifyCopyArgs extends CopyPlan {
  aws: AwsConnection;
  source: string;
  target: string;
}

export interface VerifiedCopy {
  objects: number;
  bytes: number;
  /** Objects judged by size and part count rather than ETag (multipart copies). */
  multipart: number;
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
  const progress: VerifyProgress = (context.info.heartbeatDetails as VerifyProgress | undefined) ?? { objects: 0, bytes: 0, multipart: 0, mismatches: 0, examples: [] };
  await passTestGate(`before-verify.${args.target}`, progress);
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
      const problem = copyMismatch(entry, copy.value as ObjectEntry, plan);
      if (problem) mismatch(entry.key, problem);
      count(progress, entry, plan);
      progress.after = entry.key;
      [source, copy] = await Promise.all([sources.next(), copies.next()]);
    }
    if (++compared % HEARTBEAT_EVERY_KEYS === 0) context.heartbeat(progress);
  }

  if (progress.mismatches > 0) throw copyDiffers(args, progress);
  const { objects, bytes, multipart, newestSourceObject } = progress;
  return { objects, bytes, multipart, ...(newestSourceObject ? { newestSourceObject } : {}) };
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
  const more = progress.mismatches > progress.examples.length ? `; and ${formatCount(progress.mismatches - progress.examples.length)} more` : '';
  return ApplicationFailure.create({
    type: 'CopyMismatch',
    message:
      `s3://${args.target} is not an exact copy of s3://${args.source}: ${formatCount(progress.mismatches)} of ` +
      `${formatCount(progress.objects)} objects (${formatBytes(progress.bytes)}) differ: ${named}${more}`,
    nonRetryable: true,
    details: [progress.examples],
  });
}
