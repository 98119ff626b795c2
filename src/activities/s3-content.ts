/**
 * Content comparison where ETags cannot be compared. A copy made in parts has
 * the ETag `md5(md5(part 1) … md5(part n))-n`, which depends on where the
 * parts were cut, so it never equals its source's; a multipart source copied
 * whole gets the plain MD5 of its bytes. Both are computed here from the
 * source's bytes, read once as a stream and cut where the copy plan cuts, and
 * compared with the copy's ETag: equal means equal content, part by part.
 *
 * The read is conditional on the source's listed ETag, so an object rewritten
 * while it is read is reported as changed rather than hashed half old, half new.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { abortable, awsFailure } from './aws.js';
import { partsInEtag, partSizeFor, type CopyPlan, type ObjectEntry } from './s3-objects.js';

/** Why `copy` does not hold `source`'s content, or null when it does. */
export async function contentMismatch(
  s3: S3Client,
  bucket: string,
  source: ObjectEntry,
  copy: ObjectEntry,
  plan: CopyPlan,
  progress: () => void,
): Promise<string | null> {
  const parts = partsInEtag(copy.etag);
  const partSize = parts > 0 ? partSizeFor(source.size, plan) : source.size;
  if (parts > 0 && Math.ceil(source.size / partSize) !== parts) {
    return `the copy has ${parts} parts, the copy plan cuts ${Math.ceil(source.size / partSize)}: its content cannot be checked`;
  }
  let body: Readable;
  try {
    const answer = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: source.key, IfMatch: source.etag }), abortable());
    body = answer.Body as Readable;
  } catch (err) {
    const name = (err as { name?: string }).name;
    if (name === 'PreconditionFailed' || name === 'NoSuchKey') return 'changed in the source while it was being checked';
    throw awsFailure(err, `read s3://${bucket}/${source.key} to check its copy`);
  }
  const expected = await etagOf(body, parts > 0 ? partSize : undefined, progress);
  return expected === unquote(copy.etag) ? null : `content differs: the source's bytes give ETag "${expected}", the copy has ${copy.etag}`;
}

/** The ETag of these bytes: their MD5, or cut into parts of `partSize`, the multipart form. */
export async function etagOf(
  bytes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  partSize: number | undefined,
  progress: () => void = () => {},
): Promise<string> {
  if (partSize === undefined) {
    const whole = createHash('md5');
    for await (const chunk of bytes) {
      whole.update(chunk);
      progress();
    }
    return whole.digest('hex');
  }
  const digests: Buffer[] = [];
  let part: Hash = createHash('md5');
  let inPart = 0;
  for await (const received of bytes) {
    let chunk = Buffer.from(received.buffer, received.byteOffset, received.byteLength);
    while (chunk.length) {
      const take = Math.min(chunk.length, partSize - inPart);
      part.update(chunk.subarray(0, take));
      inPart += take;
      chunk = chunk.subarray(take);
      if (inPart === partSize) {
        digests.push(part.digest());
        part = createHash('md5');
        inPart = 0;
      }
    }
    progress();
  }
  if (inPart > 0) digests.push(part.digest());
  return `${createHash('md5').update(Buffer.concat(digests)).digest('hex')}-${digests.length}`;
}

function unquote(etag: string): string {
  return etag.replace(/^"|"$/g, '');
}
