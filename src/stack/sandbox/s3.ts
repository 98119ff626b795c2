/**
 * The sandbox's bucket for `bucket-swap`, in moto: `sandbox-uploads`, a small
 * site-and-uploads bucket with what a real one has (nested prefixes, folder
 * markers and other zero-byte objects, content types, user metadata, object
 * tags, keys with spaces and non-ASCII characters, overwritten objects with
 * older versions) and the settings a swap must carry over (versioning,
 * default encryption, public access block, tags). Expects a fresh moto.
 */
import {
  CreateBucketCommand,
  PutBucketEncryptionCommand,
  PutBucketTaggingCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutPublicAccessBlockCommand,
  S3Client,
  type BucketLocationConstraint,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import type { BucketSwapInputs } from '../../catalog/bucket-swap.js';

/** The sandbox's default inputs of `bucket-swap`: which bucket it moves where. */
export type BucketSwapDefaults = Required<Pick<BucketSwapInputs, 'source' | 'target' | 'mode'>>;

export const SANDBOX_BUCKET = 'sandbox-uploads';
const NEW_BUCKET = 'sandbox-uploads-v2';
const UPLOADS = 200;
/** moto serves roughly 100-150 requests a second; a few at a time is as fast as it gets. */
const SEED_CONCURRENCY = 8;

const MOTO_CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };
/** A zero-length buffer, not '': the SDK takes an empty string for a stream of unknown length and warns. */
const EMPTY = Buffer.alloc(0);

export async function seedBuckets(endpoint: string, region: string): Promise<BucketSwapDefaults> {
  const s3 = new S3Client({ endpoint, region, credentials: MOTO_CREDENTIALS, forcePathStyle: true });
  try {
    await s3.send(new CreateBucketCommand({ Bucket: SANDBOX_BUCKET, ...locatedIn(region) }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: SANDBOX_BUCKET, VersioningConfiguration: { Status: 'Enabled' } }));
    await s3.send(
      new PutBucketEncryptionCommand({
        Bucket: SANDBOX_BUCKET,
        ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      }),
    );
    await s3.send(
      new PutPublicAccessBlockCommand({
        Bucket: SANDBOX_BUCKET,
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          IgnorePublicAcls: true,
          BlockPublicPolicy: true,
          RestrictPublicBuckets: true,
        },
      }),
    );
    await s3.send(
      new PutBucketTaggingCommand({
        Bucket: SANDBOX_BUCKET,
        Tagging: {
          TagSet: [
            { Key: 'team', Value: 'web' },
            { Key: 'env', Value: 'sandbox' },
          ],
        },
      }),
    );

    const limit = pLimit(SEED_CONCURRENCY);
    await Promise.all(sandboxObjects().map((object) => limit(() => s3.send(new PutObjectCommand({ Bucket: SANDBOX_BUCKET, ...object })))));
    // Overwritten objects: their older versions are part of what deleting the old bucket must remove.
    for (const key of ['index.html', 'docs/readme.txt']) {
      await s3.send(
        new PutObjectCommand({
          Bucket: SANDBOX_BUCKET,
          Key: key,
          Body: `${key}, second edition\n`,
          ContentType: key.endsWith('.html') ? 'text/html' : 'text/plain',
        }),
      );
    }
    return { source: SANDBOX_BUCKET, target: NEW_BUCKET, mode: 'aws' };
  } finally {
    s3.destroy();
  }
}

type SeedObject = Omit<PutObjectCommandInput, 'Bucket'> & { Key: string };

function sandboxObjects(): SeedObject[] {
  const site: SeedObject[] = [
    { Key: 'index.html', Body: '<!doctype html><title>sandbox</title>\n', ContentType: 'text/html', CacheControl: 'max-age=60' },
    { Key: 'favicon.ico', Body: Buffer.alloc(318, 1), ContentType: 'image/x-icon' },
    { Key: 'assets/css/site.css', Body: 'body { margin: 0 }\n', ContentType: 'text/css' },
    { Key: 'assets/js/app.js', Body: 'console.log("sandbox");\n', ContentType: 'application/javascript', ContentEncoding: 'identity' },
    { Key: 'docs/readme.txt', Body: 'sandbox uploads\n', ContentType: 'text/plain', Metadata: { owner: 'web-team' } },
    { Key: 'docs/with space & plus+sign.txt', Body: 'odd key\n', ContentType: 'text/plain' },
    { Key: 'docs/ünïcødé/naïve.txt', Body: 'non-ASCII key\n', ContentType: 'text/plain; charset=utf-8' },
    // Folder markers and other zero-byte objects, as consoles and some tools create them.
    { Key: 'uploads/', Body: EMPTY },
    { Key: 'reports/', Body: EMPTY },
    { Key: 'empty/.keep', Body: EMPTY, ContentType: 'application/octet-stream' },
  ];
  const reports: SeedObject[] = [1, 2, 3, 4].map((quarter) => ({
    Key: `reports/2024/q${quarter}.csv`,
    Body: `quarter,revenue\nq${quarter},${quarter * 1000}\n`,
    ContentType: 'text/csv',
    Metadata: { quarter: String(quarter), 'generated-by': 'sandbox-seed' },
    Tagging: 'classification=internal&retention=7y',
  }));
  const uploads: SeedObject[] = Array.from({ length: UPLOADS }, (_, i) => ({
    Key: `uploads/2024/${String((i % 12) + 1).padStart(2, '0')}/user-${i % 7}/photo-${i}.jpg`,
    Body: Buffer.alloc(200 + i * 37, i % 256),
    ContentType: 'image/jpeg',
    Metadata: { 'uploaded-by': `user-${i % 7}` },
    ...(i % 5 === 0 ? { Tagging: `classification=${i % 10 === 0 ? 'public' : 'private'}` } : {}),
  }));
  return [...site, ...reports, ...uploads];
}

function locatedIn(region: string): { CreateBucketConfiguration?: { LocationConstraint: BucketLocationConstraint } } {
  return region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } };
}
