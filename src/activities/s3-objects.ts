/**
 * What the copy and its verification agree on: how a bucket is listed (one
 * page at a time, never the whole listing), how an object is copied (one
 * CopyObject, or UploadPartCopy parts above a threshold), and when a copy
 * counts as the same object as its source.
 */
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { abortable, callAws } from './aws.js';

/** One listed object: what ListObjectsV2 tells about it, nothing more. */
export interface ObjectEntry {
  key: string;
  size: number;
  etag: string;
  lastModified?: string;
  storageClass?: string;
}

export interface ObjectPage {
  entries: ObjectEntry[];
  /** Where the next page starts; undefined on the last page. */
  nextToken?: string;
}

/** How objects are copied; the verification must know it to judge multipart copies. */
export interface CopyPlan {
  /** Objects larger than this are copied in parts (CopyObject's own limit is 5 GiB). */
  multipartThreshold: number;
  /** Size of each UploadPartCopy part. */
  partSize: number;
}

/** S3 lists at most 1,000 keys per page; fewer pages means fewer requests and fewer checkpoints. */
export const PAGE_SIZE = 1000;
/** S3's limits on multipart uploads. */
export const MIN_PART_SIZE = 5 * 2 ** 20;
export const MAX_PART_SIZE = 5 * 2 ** 30;
export const MAX_PARTS = 10_000;

export async function listPage(
  s3: S3Client,
  bucket: string,
  position: { token?: string; startAfter?: string },
  maxKeys = PAGE_SIZE,
): Promise<ObjectPage> {
  const answer = await callAws(`list objects of s3://${bucket}`, () =>
    s3.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        MaxKeys: maxKeys,
        ...(position.token ? { ContinuationToken: position.token } : position.startAfter ? { StartAfter: position.startAfter } : {}),
      }),
      abortable(),
    ),
  );
  const entries = (answer.Contents ?? []).map((o) => ({
    key: o.Key!,
    size: o.Size ?? 0,
    etag: o.ETag ?? '',
    ...(o.LastModified ? { lastModified: o.LastModified.toISOString() } : {}),
    ...(o.StorageClass ? { storageClass: o.StorageClass } : {}),
  }));
  return { entries, ...(answer.IsTruncated && answer.NextContinuationToken ? { nextToken: answer.NextContinuationToken } : {}) };
}

/**
 * Every object after `startAfter`, one at a time, fetching the next page while
 * the current one is consumed. Holds at most two pages.
 */
export async function* listEntries(s3: S3Client, bucket: string, startAfter?: string): AsyncGenerator<ObjectEntry> {
  let next: Promise<ObjectPage> | undefined = listPage(s3, bucket, { startAfter });
  while (next) {
    const page: ObjectPage = await next;
    next = page.nextToken ? listPage(s3, bucket, { token: page.nextToken }) : undefined;
    // A prefetch the consumer never awaits (it stopped early) must not become an unhandled rejection.
    next?.catch(() => {});
    yield* page.entries;
  }
}

/** The part size for one object: the plan's, raised when needed to stay within S3's 10,000 parts. */
export function partSizeFor(size: number, plan: CopyPlan): number {
  return Math.min(MAX_PART_SIZE, Math.max(MIN_PART_SIZE, plan.partSize, Math.ceil(size / MAX_PARTS)));
}

/** How many parts the copy of an object of this size has; 0 when it is copied with one CopyObject. */
export function plannedParts(size: number, plan: CopyPlan): number {
  return size > plan.multipartThreshold ? Math.ceil(size / partSizeFor(size, plan)) : 0;
}

/** The part count of a multipart ETag ("<md5>-<parts>"), 0 for a single-part one. */
export function partsInEtag(etag: string): number {
  const match = /-(\d+)"?$/.exec(etag);
  return match ? Number(match[1]) : 0;
}

/**
 * Why `copy` is not a faithful copy of `source`, or null when it is.
 *
 * Single-part ETags are the MD5 of the content, so equal ETags mean equal
 * bytes. A multipart ETag is the MD5 of the parts' MD5s plus "-<parts>": it
 * depends on how the object was cut into parts, so a multipart copy cannot
 * match its source's ETag. Those are judged by size and part count (the
 * count the copy plan gives for that size). No content checksum is used for
 * them: S3's composite checksums depend on the part layout too, and reading
 * the bytes back is what a server-side copy avoids.
 */
export function copyMismatch(source: ObjectEntry, copy: ObjectEntry, plan: CopyPlan): string | null {
  if (source.size !== copy.size) return `size ${source.size} in the source, ${copy.size} in the copy`;
  const copyParts = partsInEtag(copy.etag);
  const expectedParts = plannedParts(source.size, plan);
  if (expectedParts > 0) {
    return copyParts === expectedParts ? null : `expected a ${expectedParts}-part copy, found ETag ${copy.etag}`;
  }
  if (partsInEtag(source.etag) === 0) {
    return source.etag === copy.etag ? null : `ETag ${source.etag} in the source, ${copy.etag} in the copy`;
  }
  // CopyObject of a multipart source: S3 gives the copy a fresh single-part ETag; emulators keep the source's.
  return copyParts === 0 || copy.etag === source.etag ? null : `ETag ${source.etag} in the source, ${copy.etag} in the copy`;
}

/** The CopySource header: bucket and key, URL-encoded except for the slashes between key segments. */
export function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

/** S3 lists keys in UTF-8 byte order, which differs from JavaScript's UTF-16 order for some characters. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
