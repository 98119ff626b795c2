/**
 * Where backups live between the worker that dumps and the worker that
 * restores: S3, one object per file of pg_dump's directory format, and a
 * manifest written last. The manifest is what makes a backup exist: no
 * manifest, no backup, however many files an interrupted upload left.
 *
 * S3 rather than a shared folder: workers may run on different hosts (the
 * restore can land anywhere), S3 is durable without mounting anything, and the
 * sandbox exercises the same code against moto.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AwsConnection } from '../config.js';
import { abortable, awsFailure, callAws, invalidInput } from './aws.js';

export interface BackupLocation {
  aws: AwsConnection;
  bucket: string;
  /** Ends with `/`; unique per run, so two runs never mix files. */
  prefix: string;
}

export interface BackupManifest {
  format: 'pg_dump-directory';
  instance: string;
  database: string;
  pgDumpVersion: string;
  createdAt: string;
  files: { name: string; bytes: number }[];
}

const MANIFEST = 'manifest.json';
/** Files above this go up in parts: a single PUT stops at 5 GiB, and parts keep memory flat. */
const PART_BYTES = 64 * 1024 * 1024;

export async function checkBucket(s3: S3Client, bucket: string): Promise<void> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }), abortable());
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404 || (err as Error).name === 'NotFound') throw invalidInput('backup.bucket', `no S3 bucket ${bucket}`);
    throw awsFailure(err, `read bucket ${bucket}`, 'backup.bucket');
  }
}

/** The manifest of a complete backup, or undefined while there is none. */
export async function readManifest(s3: S3Client, location: BackupLocation): Promise<BackupManifest | undefined> {
  try {
    const answer = await s3.send(new GetObjectCommand({ Bucket: location.bucket, Key: location.prefix + MANIFEST }), abortable());
    return JSON.parse(await answer.Body!.transformToString()) as BackupManifest;
  } catch (err) {
    if ((err as Error).name === 'NoSuchKey') return undefined;
    throw awsFailure(err, `read s3://${location.bucket}/${location.prefix}${MANIFEST}`);
  }
}

/** Written after every file is up: from then on the backup exists. */
export async function writeManifest(s3: S3Client, location: BackupLocation, manifest: BackupManifest): Promise<void> {
  await callAws(`write s3://${location.bucket}/${location.prefix}${MANIFEST}`, () =>
    s3.send(
      new PutObjectCommand({
        Bucket: location.bucket,
        Key: location.prefix + MANIFEST,
        Body: JSON.stringify(manifest, null, 2),
        ContentType: 'application/json',
      }),
      abortable(),
    ),
  );
}

export async function uploadFile(s3: S3Client, location: BackupLocation, dir: string, name: string): Promise<number> {
  const path = join(dir, name);
  const { size } = await stat(path);
  const key = location.prefix + name;
  const what = `upload ${name} to s3://${location.bucket}/${key}`;
  if (size <= PART_BYTES) {
    await callAws(what, () =>
      s3.send(new PutObjectCommand({ Bucket: location.bucket, Key: key, Body: createReadStream(path), ContentLength: size }), abortable()),
    );
  } else {
    await uploadInParts(s3, location.bucket, key, path, size, what);
  }
  return size;
}

async function uploadInParts(s3: S3Client, bucket: string, key: string, path: string, size: number, what: string): Promise<void> {
  const { UploadId } = await callAws(what, () => s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }), abortable()));
  const file = await open(path, 'r');
  try {
    const parts: { PartNumber: number; ETag: string }[] = [];
    for (let offset = 0, number = 1; offset < size; offset += PART_BYTES, number++) {
      const buffer = Buffer.alloc(Math.min(PART_BYTES, size - offset));
      await file.read(buffer, 0, buffer.length, offset);
      const { ETag } = await callAws(what, () =>
        s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: number, Body: buffer }), abortable()),
      );
      parts.push({ PartNumber: number, ETag: ETag! });
    }
    await callAws(what, () =>
      s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }), abortable()),
    );
  } catch (err) {
    // An unfinished upload's parts are billed until aborted.
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId })).catch(() => {});
    throw err;
  } finally {
    await file.close();
  }
}

/** Downloads one file of the backup and checks it is as long as the manifest says. */
export async function downloadFile(
  s3: S3Client,
  location: BackupLocation,
  dir: string,
  file: { name: string; bytes: number },
): Promise<void> {
  const key = location.prefix + file.name;
  const what = `download s3://${location.bucket}/${key}`;
  const answer = await callAws(what, () => s3.send(new GetObjectCommand({ Bucket: location.bucket, Key: key }), abortable()));
  const path = join(dir, file.name);
  await pipeline(answer.Body as Readable, createWriteStream(path));
  const { size } = await stat(path);
  if (size !== file.bytes) throw new Error(`${what}: got ${size} bytes, the manifest says ${file.bytes}`);
}
