/**
 * Counting the requests moto actually received, from its own recorder
 * (`/moto-api/recorder/*`): an outside count, so it includes the requests
 * of a worker that was killed, which no counter inside the worker survives.
 * Used by tests and benchmarks; moto records nothing until started.
 */

export interface RecordedRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
}

export interface S3Request {
  /** S3 API operation, e.g. CopyObject, UploadPartCopy, ListObjectsV2; `other` for anything else. */
  operation: string;
  bucket?: string;
  key?: string;
}

export class MotoRecorder {
  constructor(private readonly endpoint: string) {}

  /** Forgets earlier recordings and records from now on. */
  async start(): Promise<void> {
    await this.call('reset-recording', 'POST');
    await this.call('start-recording', 'POST');
  }

  /** Stops recording; returns what was recorded since `start`. */
  async stop(): Promise<RecordedRequest[]> {
    await this.call('stop-recording', 'POST');
    return recordedRequests(await this.call('download-recording', 'GET'));
  }

  private async call(action: string, method: 'GET' | 'POST'): Promise<string> {
    const response = await fetch(`${this.endpoint}/moto-api/recorder/${action}`, { method });
    const text = await response.text();
    if (!response.ok) throw new Error(`moto recorder ${action}: HTTP ${response.status} ${text}`);
    return text;
  }
}

/**
 * The requests in a moto recording. moto writes each entry and its newline
 * in two writes from the server thread that handled the request, so under
 * concurrent requests (other lanes of a shared stack) a line can hold two
 * entries back to back, and a write still under way can leave the last
 * entry unfinished. Entries are therefore read by their braces, not by
 * lines; an unfinished last entry is a request that arrived after `stop`.
 */
export function recordedRequests(text: string): RecordedRequest[] {
  const requests: RecordedRequest[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}' && --depth === 0) {
      const { method, url, headers } = JSON.parse(text.slice(start, i + 1)) as RecordedRequest;
      requests.push({ method, url, headers });
    }
  }
  return requests;
}

/** Which S3 operation a path-style request was, from its method, path, query and headers. */
export function s3Request(request: RecordedRequest): S3Request {
  const url = new URL(request.url);
  const [bucket, ...keyParts] = url.pathname.replace(/^\//, '').split('/');
  const key = keyParts.length ? decoded(keyParts.join('/')) : undefined;
  const query = url.searchParams;
  const header = (name: string) => Object.entries(request.headers).find(([h]) => h.toLowerCase() === name)?.[1];
  if (!bucket || header('x-amz-target')) return { operation: 'other' };
  const where = { bucket: decoded(bucket), ...(key !== undefined ? { key } : {}) };
  return { operation: operationOf(request.method, key !== undefined && key !== '', query, Boolean(header('x-amz-copy-source'))), ...where };
}

/** moto records some paths already decoded (a key holding '%' then is not valid percent-encoding). */
function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function operationOf(method: string, onObject: boolean, query: URLSearchParams, copies: boolean): string {
  const has = (name: string) => query.has(name);
  switch (method) {
    case 'PUT':
      if (copies) return has('uploadId') ? 'UploadPartCopy' : 'CopyObject';
      if (has('uploadId')) return 'UploadPart';
      if (has('tagging')) return onObject ? 'PutObjectTagging' : 'PutBucketTagging';
      return onObject ? 'PutObject' : 'PutBucket';
    case 'POST':
      if (has('uploads')) return 'CreateMultipartUpload';
      if (has('uploadId')) return 'CompleteMultipartUpload';
      if (has('delete')) return 'DeleteObjects';
      return 'Post';
    case 'GET':
      if (onObject) return has('tagging') ? 'GetObjectTagging' : 'GetObject';
      if (has('versions')) return 'ListObjectVersions';
      if (has('uploads')) return 'ListMultipartUploads';
      if (query.get('list-type') === '2') return 'ListObjectsV2';
      return has('location') ? 'GetBucketLocation' : 'ListObjects';
    case 'HEAD':
      return onObject ? 'HeadObject' : 'HeadBucket';
    case 'DELETE':
      if (has('uploadId')) return 'AbortMultipartUpload';
      return onObject ? 'DeleteObject' : 'DeleteBucket';
    default:
      return 'other';
  }
}

/** Requests per operation against one bucket, e.g. { CopyObject: 2000, ListObjectsV2: 3 }. */
export function countByOperation(requests: RecordedRequest[], bucket: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const request of requests) {
    const { operation, bucket: target } = s3Request(request);
    if (target !== bucket) continue;
    counts[operation] = (counts[operation] ?? 0) + 1;
  }
  return counts;
}
