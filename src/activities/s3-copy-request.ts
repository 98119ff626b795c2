/**
 * CopyObject without the SDK's request pipeline: the copy of small objects is
 * bound by the CPU each request costs, and the SDK spends 3-4 ms of it per
 * CopyObject (schema serde, endpoint rules, middleware; measured with
 * bench/copy-profile.ts) where a signed `http.request` costs 0.5-1 ms.
 *
 * Only the hot request is sent this way, and only what the SDK itself decides
 * is kept: the endpoint comes from the client's own endpoint rules (once per
 * bucket), credentials from its provider chain, the clock offset from the client's
 * own skew correction (which this path updates the way the SDK does). The
 * signature is SigV4 as the SDK computes it, by a signer for this one request
 * shape (s3-request-signer.ts) at under half the SDK's CPU. Requests
 * go out through an undici pool of kept-alive connections rather than node's
 * `http.request` (bench/copy-profile.ts, 2,000 x 4 KB at 64 in flight: 505
 * objects/s against 393). Failures become `S3ServiceException`s with the same
 * name and `$metadata` the SDK would give, so the copier's throttling,
 * retry and failure mapping treat both paths alike. Anything unusual (a
 * signing scheme other than SigV4, endpoint headers) returns undefined from
 * `leanCopyRequests`, and the copier uses the SDK.
 */
import { S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import { Agent, type Dispatcher } from 'undici';
import { S3RequestSigner, type Credentials } from './s3-request-signer.js';

export interface CopyObjectRequest {
  bucket: string;
  key: string;
  /** The x-amz-copy-source header, already encoded (s3-objects.ts copySource). */
  copySource: string;
  storageClass?: string;
}

export interface LeanCopyRequests {
  /** One CopyObject; resolves once S3 confirms the copy, rejects as the SDK would. */
  copyObject(request: CopyObjectRequest): Promise<{ $metadata: { attempts: number; httpStatusCode: number } }>;
  /** Lets the connections go once the requests in flight have their answers. */
  close(): Promise<void>;
}

/** SHA-256 of an empty body: CopyObject sends none. */
const EMPTY_BODY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Connections per origin: the copy's most requests in flight (s3-copy.ts MAX_REQUESTS_IN_FLIGHT, 256) and a margin. */
const CONNECTIONS = 300;
/**
 * One request per connection at a time (no pipelining: S3 does not promise it). S3 closes idle connections after
 * about 20 s; undici retires ours before that, so no request is sent on a socket S3 is closing.
 */
const AGENT_OPTIONS = { connections: CONNECTIONS, pipelining: 1, keepAliveTimeout: 4_000, keepAliveMaxTimeout: 15_000 };

/** The SDK corrects its clock when the server's differs by this much (AwsSdkSigV4Signer). */
const CLOCK_SKEW_THRESHOLD_MS = 240_000;

export interface BucketEndpoint {
  url: URL;
  signer: S3RequestSigner;
  /** The client's config, whose `systemClockOffset` (server time minus ours, ms) signing shares with the SDK. */
  clock: { systemClockOffset?: number };
}

interface ClientConfig {
  endpoint?: () => Promise<{ protocol: string; hostname: string; port?: number; path: string }>;
  endpointProvider: (params: Record<string, unknown>) => {
    url: URL | string;
    headers?: Record<string, string[]>;
    properties?: { authSchemes?: { name: string; signingName?: string; signingRegion?: string; disableDoubleEncoding?: boolean }[] };
  };
  region: () => Promise<string>;
  forcePathStyle?: boolean;
  useAccelerateEndpoint?: boolean;
  useFipsEndpoint: () => Promise<boolean>;
  useDualstackEndpoint: () => Promise<boolean>;
  credentials: Credentials | (() => Promise<Credentials>);
  systemClockOffset?: number;
}

/**
 * CopyObject requests into `bucket` for this client, or undefined when its endpoint or signing is not the plain
 * SigV4 this path implements. Aborting `signal` aborts every request in flight: the requests share a pool that the
 * abort destroys, so there is one listener for all of them (a listener per request cost 4 % of the copy's CPU, and
 * as much again in garbage).
 */
export async function leanCopyRequests(s3: S3Client, bucket: string, signal: AbortSignal): Promise<LeanCopyRequests | undefined> {
  const endpoint = await bucketEndpoint(s3, bucket);
  if (!endpoint) return undefined;
  const pool = new Agent(AGENT_OPTIONS);
  const abort = () => void pool.destroy(abortError()).catch(() => undefined);
  signal.addEventListener('abort', abort, { once: true });
  return {
    copyObject: (request) => copyObject(pool, endpoint, request, signal),
    close: async () => {
      signal.removeEventListener('abort', abort);
      if (!pool.destroyed && !pool.closed) await pool.close();
    },
  };
}

/** Where requests about `bucket` go and how they are signed, by the client's own endpoint rules. */
export async function bucketEndpoint(s3: S3Client, bucket: string): Promise<BucketEndpoint | undefined> {
  const config = s3.config as unknown as ClientConfig;
  const custom = config.endpoint ? await config.endpoint() : undefined;
  const region = await config.region();
  const resolved = config.endpointProvider({
    Bucket: bucket,
    Region: region,
    UseFIPS: await config.useFipsEndpoint(),
    UseDualStack: await config.useDualstackEndpoint(),
    ForcePathStyle: config.forcePathStyle ?? false,
    Accelerate: config.useAccelerateEndpoint ?? false,
    ...(custom ? { Endpoint: `${custom.protocol}//${custom.hostname}${custom.port ? `:${custom.port}` : ''}${custom.path}` } : {}),
  });
  const scheme = resolved.properties?.authSchemes?.[0];
  if (!scheme || scheme.name !== 'sigv4' || Object.keys(resolved.headers ?? {}).length) return undefined;
  // S3 signs the path as sent; a scheme that encodes it twice is not S3's.
  if (scheme.disableDoubleEncoding === false) return undefined;
  const url = new URL(resolved.url);
  const { credentials } = config;
  const signer = new S3RequestSigner(
    typeof credentials === 'function' ? credentials : () => Promise.resolve(credentials),
    scheme.signingRegion ?? region,
    scheme.signingName ?? 's3',
  );
  return { url, signer, clock: config };
}

/** A key in a URL path: every segment percent-encoded as S3 expects (RFC 3986: !'()* too), slashes kept. */
export function keyPath(key: string): string {
  return key
    .split('/')
    .map((segment) => encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

/** The request CopyObject sends to `endpoint.url`'s origin, signed (exported for the unit test, which compares it with the SDK's). */
export async function signedCopyObject(endpoint: BucketEndpoint, request: CopyObjectRequest, signingDate?: Date) {
  const { url } = endpoint;
  const base = url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`;
  const headers: Record<string, string> = {
    host: url.host,
    'content-length': '0',
    'x-amz-content-sha256': EMPTY_BODY_SHA256,
    'x-amz-copy-source': request.copySource,
    'x-amz-metadata-directive': 'COPY',
    'x-amz-tagging-directive': 'COPY',
  };
  if (request.storageClass) headers['x-amz-storage-class'] = request.storageClass;
  return endpoint.signer.sign('PUT', `${base}${keyPath(request.key)}`, headers, signingDate ?? new Date());
}

async function copyObject(
  pool: Agent,
  endpoint: BucketEndpoint,
  request: CopyObjectRequest,
  signal: AbortSignal,
): Promise<{ $metadata: { attempts: number; httpStatusCode: number } }> {
  if (signal.aborted) throw abortError();
  const offsetBefore = endpoint.clock.systemClockOffset ?? 0;
  const sentAt = Date.now();
  const signed = await signedCopyObject(endpoint, request, new Date(sentAt + offsetBefore));
  const answer = await exchange(pool, { origin: endpoint.url.origin, method: 'PUT', path: signed.path, headers: signed.headers });
  // S3 may answer a copy 200 and report its failure in the body.
  if (answer.statusCode === 200 && !answer.body.includes('<Error>')) return { $metadata: { attempts: 1, httpStatusCode: 200 } };
  const err = serviceError(answer.statusCode, answer.body);
  if (answer.date && correctClock(endpoint.clock, answer.date, sentAt, offsetBefore))
    (err.$metadata as { clockSkewCorrected?: boolean }).clockSkewCorrected = true;
  throw err;
}

interface Answer {
  statusCode: number;
  date?: string;
  body: string;
}

/**
 * One request and its whole (small) answer, through the pool's dispatcher with a handler of our own: undici's
 * `request()` wraps every answer in a readable stream (and its promises) for a body of a few hundred bytes.
 */
function exchange(pool: Dispatcher, options: Dispatcher.DispatchOptions): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const answer: Answer = { statusCode: 0, body: '' };
    const chunks: Buffer[] = [];
    pool.dispatch(options, {
      // Its presence tells undici this handler speaks the controller API.
      onRequestStart() {},
      onResponseStart(_controller, statusCode, headers) {
        answer.statusCode = statusCode;
        answer.date = typeof headers.date === 'string' ? headers.date : undefined;
      },
      onResponseData(_controller, chunk) {
        chunks.push(chunk);
      },
      onResponseEnd() {
        answer.body = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
        resolve(answer);
      },
      onResponseError(_controller, err) {
        reject(err);
      },
    });
  });
}

/**
 * What the SDK does with the Date of an error answer (AwsSdkSigV4Signer's errorHandler): takes the server's clock
 * as the offset, and says the request is worth re-sending when the offset moved past the skew S3 tolerates. The
 * offset lives in the client's config, so the SDK's own requests (listings, parts) sign with it too.
 */
export function correctClock(clock: { systemClockOffset?: number }, serverDate: string, sentAt: number, offsetBefore: number): boolean {
  const serverTime = Date.parse(serverDate);
  const receivedAt = Date.now();
  // An answer that took a quarter hour says nothing reliable about the server's clock.
  if (Number.isNaN(serverTime) || receivedAt - sentAt > 900_000) return false;
  const offset = serverTime - receivedAt;
  clock.systemClockOffset = offset;
  return Math.abs(offset) >= CLOCK_SKEW_THRESHOLD_MS && Math.abs(offset - offsetBefore) >= CLOCK_SKEW_THRESHOLD_MS;
}

/** An S3 error answer as the SDK reports it: the error code as the name, the HTTP status in `$metadata`. */
export function serviceError(status: number, body: string): S3ServiceException {
  const field = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(body)?.[1];
  const name = field('Code') ?? (status === 404 ? 'NotFound' : status === 503 ? 'ServiceUnavailable' : `Http${status}`);
  return new S3ServiceException({
    name,
    message: field('Message') ?? `HTTP ${status}`,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status, attempts: 1, ...(field('RequestId') ? { requestId: field('RequestId') } : {}) },
  });
}

function abortError(): Error {
  const err = new Error('Request aborted');
  err.name = 'AbortError';
  return err;
}
