import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';

export interface Listed {
  key: string;
  size: number;
  etag: string;
}

/** Every object of a bucket, page by page, as `aws s3 ls --recursive` would show them. */
export async function listAll(s3: S3Client, bucket: string): Promise<Listed[]> {
  const all: Listed[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    all.push(...(page.Contents ?? []).map((o) => ({ key: o.Key!, size: o.Size!, etag: o.ETag! })));
    token = page.NextContinuationToken;
  } while (token);
  return all;
}
