/**
 * `s3://bucket/some/prefix` as runbooks take it, parsed once. Pure: the
 * catalog validates URIs with it before a run starts.
 */
import { z } from 'zod';

export interface S3Location {
  bucket: string;
  /** Key prefix ending in `/` (a URI names a folder of objects), or '' for the whole bucket. */
  prefix: string;
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function parseS3Uri(uri: string): S3Location {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!match) throw new Error(`'${uri}' is not an s3:// URI`);
  const [, bucket, path] = match as unknown as [string, string, string];
  if (!BUCKET.test(bucket)) throw new Error(`'${bucket}' is not a valid bucket name`);
  const trimmed = path.replace(/\/+$/, '');
  return { bucket, prefix: trimmed ? `${trimmed}/` : '' };
}

export const s3UriSchema = z.string().superRefine((uri, ctx) => {
  try {
    parseS3Uri(uri);
  } catch (err) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
  }
});
