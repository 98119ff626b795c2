/**
 * Copying every object of one bucket into another, server-side, at the scale
 * of millions of objects (s5cmd's design): the listing streams page by page
 * into a pool of copy requests whose size adapts to throttling
 * (adaptive-concurrency.ts), so copying starts before listing ends and memory
 * holds at most three pages (two copying, the next one listed meanwhile). After each fully copied page the activity
 * heartbeats a small checkpoint (the continuation token after that page and
 * counters); a retried attempt resumes there, and first compares the pages
 * the lost attempt may have touched with the target, so it re-sends only the
 * copies that did not land.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  UploadPartCopyCommand,
  type S3Client,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { setMaxListeners } from 'node:events';
import { ApplicationFailure, Context } from '@temporalio/activity';
import pLimit from 'p-limit';
import { AdaptiveConcurrency, type AdaptiveConcurrencyStats } from './adaptive-concurrency.js';
import { awsFailure, callAws, type AwsConnection } from './aws.js';
import { leanCopyRequests, type LeanCopyRequests } from './s3-copy-request.js';
import { passTestGate } from './test-gates.js';
import {
  compareKeys,
  copyMismatch,
  copySource,
  listPage,
  partSizeFor,
  type CopyPlan,
  type ObjectEntry,
  type ObjectPage,
} from './s3-objects.js';

export interface CopyObjectsArgs extends CopyPlan {
  /** A connection in the buckets' region. */
  aws: AwsConnection;
  source: string;
  target: string;
  /** Copy requests in flight at once, at most (fewer while S3 throttles). */
  concurrency: number;
}

/** What a retried attempt resumes from: small, whatever the bucket's size. */
export interface CopyCheckpoint {
  /** Continuation token of the first page not yet fully copied (undefined: the first page). */
  token?: string;
  /** Last key of the last fully copied page. */
  lastKey?: string;
  /** Every page is copied; a retry after a lost result returns at once. */
  finished: boolean;
  pages: number;
  /** Objects the target now holds from the pages done. */
  objects: number;
  bytes: number;
  /** Objects copied with one CopyObject. */
  copied: number;
  /** Objects copied in parts (UploadPartCopy). */
  multipart: number;
  /** Objects a lost attempt had copied, found in the target and not copied again. */
  alreadyCopied: number;
  /** Objects deleted from the source between listing and copying: nothing to copy, and verification agrees. */
  vanished: number;
}

export interface CopyResult extends Omit<CopyCheckpoint, 'token' | 'lastKey' | 'finished'> {
  /** Which attempt finished the copy (above 1: it resumed from a checkpoint). */
  attempt: number;
  /** Incomplete multipart uploads of lost attempts, aborted. */
  abortedUploads: number;
  /** How this attempt's request limit adapted to throttling, and the requests it re-sent after the SDK's own retries. */
  throttling?: AdaptiveConcurrencyStats & { resent: number };
}

/** Pages listed but not yet fully copied: the one being finished and the one being started. */
const WINDOW_PAGES = 2;
/** Large objects copied in parts at once (their parts share the request limit with whole copies). */
const MULTIPART_OBJECTS = 4;
/**
 * UploadPartCopy requests in flight across all large objects. Each moves up to a part's bytes inside S3; past a
 * few dozen they only queue on the server's disks (awscli's 10 parts of 8 MiB beat 64 parts of 64 MiB at once).
 */
export const PARTS_IN_FLIGHT = 16;
/** The catalog's ceiling; the S3 client keeps at least this many sockets open (aws.ts). */
export const MAX_REQUESTS_IN_FLIGHT = 256;
/** Sends of one request by the copier, each with the SDK's own retries inside. */
const MAX_SENDS = 8;
const RESEND_BACKOFF_BASE_MS = 100;
const RESEND_BACKOFF_CAP_MS = 5_000;
/** Heartbeat even while no page completes (a 5 GiB part copy takes a while); the SDK throttles the sends. */
const HEARTBEAT_EVERY_MS = 2_000;

type Outcome = 'copied' | 'multipart' | 'already-copied' | 'vanished' | 'stopped';

interface PageInFlight {
  nextToken?: string;
  lastKey?: string;
  tally: Promise<PageTally>;
}

type PageTally = Pick<CopyCheckpoint, 'objects' | 'bytes' | 'copied' | 'multipart' | 'alreadyCopied' | 'vanished'>;

export async function copyObjects(s3: S3Client, args: CopyObjectsArgs): Promise<CopyResult> {
  const context = Context.current();
  const { attempt } = context.info;
  let checkpoint: CopyCheckpoint = (context.info.heartbeatDetails as CopyCheckpoint | undefined) ?? startCheckpoint();
  const heartbeat = () => context.heartbeat(checkpoint);
  heartbeat(); // so that a retry knows where the first page starts even if no page completes
  const ticker = setInterval(heartbeat, HEARTBEAT_EVERY_MS);
  // Every SDK request in flight (listings, parts, and whole copies where the lean path is off) listens for cancellation
  // on this one signal; that many listeners are expected, and twice that for a moment: a request's listener goes when
  // its answer's body closes, a tick after the next request on that slot has added its own.
  setMaxListeners(2 * MAX_REQUESTS_IN_FLIGHT + 16, context.cancellationSignal);
  // Whole copies skip the SDK's pipeline, which costs most of the CPU of a small object's copy (s3-copy-request.ts).
  const lean = await leanCopyRequests(s3, args.target, context.cancellationSignal);
  const copier = new ObjectCopier(s3, args, context.cancellationSignal, lean);
  try {
    if (!checkpoint.finished) {
      checkpoint = await copyPages(s3, args, copier, checkpoint, attempt > 1, async (next) => {
        checkpoint = next;
        heartbeat();
        if (next.pages === 1) await passTestGate(`copy-after-page-1.${args.target}`, checkpoint);
      });
    }
    // Uploads a crashed attempt left half-done would linger (and cost) in the new bucket; it held nothing before this copy.
    const abortedUploads = attempt > 1 ? await abortIncompleteUploads(s3, args.target, context.cancellationSignal) : 0;
    const { token: _token, lastKey: _lastKey, finished: _finished, ...counts } = checkpoint;
    return { ...counts, attempt, abortedUploads, throttling: { ...copier.requests.snapshot(), resent: copier.resent } };
  } finally {
    clearInterval(ticker);
    await lean?.close();
  }
}

function startCheckpoint(): CopyCheckpoint {
  return { finished: false, pages: 0, objects: 0, bytes: 0, copied: 0, multipart: 0, alreadyCopied: 0, vanished: 0 };
}

async function copyPages(
  s3: S3Client,
  args: CopyObjectsArgs,
  copier: ObjectCopier,
  from: CopyCheckpoint,
  resuming: boolean,
  onPageDone: (checkpoint: CopyCheckpoint) => Promise<void>,
): Promise<CopyCheckpoint> {
  let checkpoint = from;
  const window: PageInFlight[] = [];
  const finishOldestPage = async () => {
    const page = window.shift()!;
    checkpoint = advance(checkpoint, await page.tally, page);
    await onPageDone(checkpoint);
  };
  const lostAttempt = new LostAttemptCopies(s3, args, resuming, checkpoint.lastKey);
  // The next page is listed while the current one is copied, so the pool never waits on a listing.
  let next: Promise<ObjectPage> | undefined = listPage(s3, args.source, { token: checkpoint.token });
  try {
    while (next) {
      const page: ObjectPage = await next;
      next = page.nextToken ? listPage(s3, args.source, { token: page.nextToken }) : undefined;
      next?.catch(() => {}); // awaited on the next turn; a failure meanwhile must not go unhandled
      const landed = await lostAttempt.copiesIn(page);
      const tally = copyPage(copier, page.entries, landed);
      tally.catch(() => {}); // awaited in order below; a failure meanwhile stops the copier at once
      window.push({ nextToken: page.nextToken, lastKey: page.entries.at(-1)?.key ?? checkpoint.lastKey, tally });
      if (window.length >= WINDOW_PAGES) await finishOldestPage();
      copier.throwIfFailed();
    }
    while (window.length) await finishOldestPage();
    return checkpoint;
  } catch (err) {
    copier.stop();
    // Let copies already sent finish before this attempt ends, so none races the next attempt.
    await Promise.allSettled(window.map((p) => p.tally));
    throw copier.failure ?? err;
  }
}

function advance(checkpoint: CopyCheckpoint, tally: PageTally, page: PageInFlight): CopyCheckpoint {
  return {
    ...(page.nextToken ? { token: page.nextToken } : {}),
    ...(page.lastKey ? { lastKey: page.lastKey } : {}),
    finished: !page.nextToken,
    pages: checkpoint.pages + 1,
    objects: checkpoint.objects + tally.objects,
    bytes: checkpoint.bytes + tally.bytes,
    copied: checkpoint.copied + tally.copied,
    multipart: checkpoint.multipart + tally.multipart,
    alreadyCopied: checkpoint.alreadyCopied + tally.alreadyCopied,
    vanished: checkpoint.vanished + tally.vanished,
  };
}

async function copyPage(copier: ObjectCopier, entries: ObjectEntry[], landed: Map<string, ObjectEntry> | undefined): Promise<PageTally> {
  // allSettled, not all: a page is done only when none of its copies is still in flight, even after a failure.
  const settled = await Promise.allSettled(
    entries.map((entry) => {
      const found = landed?.get(entry.key);
      return found && !copyMismatch(entry, found, copier.plan) ? ('already-copied' as const) : copier.copy(entry);
    }),
  );
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  const outcomes = settled.map((s) => (s as PromiseFulfilledResult<Outcome>).value);
  const tally: PageTally = { objects: 0, bytes: 0, copied: 0, multipart: 0, alreadyCopied: 0, vanished: 0 };
  outcomes.forEach((outcome, i) => {
    if (outcome === 'stopped') return;
    if (outcome === 'vanished') {
      tally.vanished++;
      return;
    }
    tally.objects++;
    tally.bytes += entries[i]!.size;
    if (outcome === 'copied') tally.copied++;
    else if (outcome === 'multipart') tally.multipart++;
    else tally.alreadyCopied++;
  });
  return tally;
}

/**
 * The copies a lost attempt made beyond its last checkpoint. That attempt had
 * at most two pages in flight past it, copied in listing order; so the pages
 * after the checkpoint are compared with the target (one listing request each)
 * for at least that many pages, and for as long as they hold copies.
 */
class LostAttemptCopies {
  private pagesToCompare: number;
  private after: string | undefined;

  constructor(
    private readonly s3: S3Client,
    private readonly args: CopyObjectsArgs,
    resuming: boolean,
    lastKeyDone: string | undefined,
  ) {
    this.pagesToCompare = resuming ? WINDOW_PAGES : 0;
    this.after = lastKeyDone;
  }

  async copiesIn(page: ObjectPage): Promise<Map<string, ObjectEntry> | undefined> {
    const last = page.entries.at(-1)?.key;
    if (this.pagesToCompare <= 0 || !last) return undefined;
    const landed = await targetEntriesUpTo(this.s3, this.args.target, this.after, last);
    this.after = last;
    this.pagesToCompare = landed.size > 0 ? Math.max(this.pagesToCompare - 1, 1) : this.pagesToCompare - 1;
    return landed;
  }
}

/** The target's objects with keys after `after` and up to `upTo`. */
async function targetEntriesUpTo(s3: S3Client, bucket: string, after: string | undefined, upTo: string): Promise<Map<string, ObjectEntry>> {
  const found = new Map<string, ObjectEntry>();
  let position: { token?: string; startAfter?: string } = { startAfter: after };
  for (;;) {
    const page = await listPage(s3, bucket, position);
    for (const entry of page.entries) {
      if (compareKeys(entry.key, upTo) > 0) return found;
      found.set(entry.key, entry);
    }
    if (!page.nextToken) return found;
    position = { token: page.nextToken };
  }
}

/**
 * Sends the copy's requests: at most as many in flight as the adaptive limit
 * allows (so parts of large objects share it with whole copies), each retried
 * past the SDK's own retries while S3 throttles or drops connections. After
 * the first failure, requests not yet sent return without sending.
 */
class ObjectCopier {
  readonly plan: CopyPlan;
  readonly requests: AdaptiveConcurrency;
  failure: Error | undefined;
  /** Requests re-sent by this copier after the SDK gave up on them. */
  resent = 0;
  private stopped = false;
  /** Large objects in parts at once: each opens a multipart upload, and their parts fill the request limit anyway. */
  private readonly multipartObjects = pLimit(MULTIPART_OBJECTS);
  private readonly partCopies = pLimit(PARTS_IN_FLIGHT);

  constructor(
    private readonly s3: S3Client,
    private readonly args: CopyObjectsArgs,
    private readonly signal: AbortSignal,
    private readonly lean: LeanCopyRequests | undefined,
  ) {
    this.plan = { multipartThreshold: args.multipartThreshold, partSize: args.partSize };
    this.requests = new AdaptiveConcurrency(Math.min(args.concurrency, MAX_REQUESTS_IN_FLIGHT));
  }

  async copy(entry: ObjectEntry): Promise<Outcome> {
    if (this.stopped) return 'stopped';
    try {
      if (entry.size > this.plan.multipartThreshold) {
        return await this.multipartObjects(async () => {
          await this.copyInParts(entry);
          return 'multipart' as const;
        });
      }
      await this.copyWhole(entry);
      return 'copied';
    } catch (err) {
      if (err instanceof Stopped) return 'stopped';
      if (isMissingKey(err)) return 'vanished';
      this.failure ??= copyFailure(err, entry.key);
      this.stop();
      throw this.failure;
    }
  }

  stop(): void {
    this.stopped = true;
  }

  throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  /** One request within the limit; throttling and dropped connections are retried with jittered backoff. */
  private async send<T extends { $metadata: { attempts?: number } }>(
    request: (s3: S3Client, options: { abortSignal: AbortSignal }) => Promise<T>,
  ): Promise<T> {
    for (let tries = 1; ; tries++) {
      try {
        return await this.requests.run(
          () => {
            if (this.stopped) throw new Stopped();
            return request(this.s3, { abortSignal: this.signal });
          },
          (answer) => answer.$metadata.attempts ?? 1,
          isThrottling,
        );
      } catch (err) {
        if (err instanceof Stopped || this.signal.aborted || tries >= MAX_SENDS || !isTransient(err)) throw err;
        this.resent++;
        await sleep(Math.random() * Math.min(RESEND_BACKOFF_CAP_MS, RESEND_BACKOFF_BASE_MS * 2 ** tries), this.signal);
      }
    }
  }

  /**
   * One CopyObject: S3 copies the content type, user metadata and tags with the
   * COPY directives. It copies whichever version is current when it runs, which
   * is what the verification then compares.
   */
  private async copyWhole(entry: ObjectEntry): Promise<void> {
    const { lean } = this;
    if (lean) {
      const copySourceHeader = copySource(this.args.source, entry.key);
      const storageClass = keptStorageClass(entry.storageClass).StorageClass;
      await this.send(() =>
        lean.copyObject({
          bucket: this.args.target,
          key: entry.key,
          copySource: copySourceHeader,
          ...(storageClass ? { storageClass } : {}),
        }),
      );
      return;
    }
    await this.send((s3, options) =>
      s3.send(
        new CopyObjectCommand({
          Bucket: this.args.target,
          Key: entry.key,
          CopySource: copySource(this.args.source, entry.key),
          MetadataDirective: 'COPY',
          TaggingDirective: 'COPY',
          ...keptStorageClass(entry.storageClass),
        }),
        options,
      ),
    );
  }

  /**
   * UploadPartCopy for objects above the threshold, the parts of all large
   * objects at most PARTS_IN_FLIGHT at once, within the request limit. A multipart upload starts empty, so the object's
   * headers, metadata and tags are read from the source and given to it;
   * every part is copied only if the source is still the version listed
   * (CopySourceIfMatch), so parts never mix two versions.
   */
  private async copyInParts(entry: ObjectEntry): Promise<void> {
    const { args } = this;
    const [head, tagging] = await Promise.all([
      this.send((s3, options) => s3.send(new HeadObjectCommand({ Bucket: args.source, Key: entry.key }), options)),
      this.send((s3, options) => s3.send(new GetObjectTaggingCommand({ Bucket: args.source, Key: entry.key }), options)),
    ]);
    const size = head.ContentLength ?? entry.size;
    const etag = head.ETag ?? entry.etag;
    const tags = tagging.TagSet ?? [];
    const { UploadId } = await this.send((s3, options) =>
      s3.send(
        new CreateMultipartUploadCommand({
          Bucket: args.target,
          Key: entry.key,
          ContentType: head.ContentType,
          ContentEncoding: head.ContentEncoding,
          ContentDisposition: head.ContentDisposition,
          ContentLanguage: head.ContentLanguage,
          CacheControl: head.CacheControl,
          Expires: head.Expires,
          Metadata: head.Metadata,
          ...keptStorageClass(head.StorageClass),
          ...(tags.length
            ? { Tagging: new URLSearchParams(tags.map((t): [string, string] => [t.Key ?? '', t.Value ?? ''])).toString() }
            : {}),
        }),
        options,
      ),
    );
    const upload = { Bucket: args.target, Key: entry.key, UploadId };
    try {
      const partSize = partSizeFor(size, this.plan);
      const parts = await Promise.all(
        byteRanges(size, partSize).map(async (range, i) => {
          const answer = await this.partCopies(() =>
            this.send((s3, options) =>
              s3.send(
                new UploadPartCopyCommand({
                  ...upload,
                  PartNumber: i + 1,
                  CopySource: copySource(args.source, entry.key),
                  CopySourceRange: `bytes=${range.first}-${range.last}`,
                  CopySourceIfMatch: etag,
                }),
                options,
              ),
            ),
          );
          return { PartNumber: i + 1, ETag: answer.CopyPartResult?.ETag };
        }),
      );
      await this.send((s3, options) =>
        s3.send(new CompleteMultipartUploadCommand({ ...upload, MultipartUpload: { Parts: parts } }), options),
      );
    } catch (err) {
      // Best effort: a retried attempt aborts whatever is left anyway.
      await this.s3.send(new AbortMultipartUploadCommand(upload)).catch(() => {});
      throw err;
    }
  }
}

/** A request not sent because the copy stopped at another's failure. */
class Stopped extends Error {}

const NETWORK_ERRORS = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNREFUSED',
  'TimeoutError',
  'RequestTimeout',
  // undici's (the lean CopyObject's client): the connection closed or timed out before the answer.
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

function errorName(err: unknown): string {
  const e = err as { name?: string; code?: string };
  return e.code && NETWORK_ERRORS.has(e.code) ? e.code : (e.name ?? '');
}

function isThrottling(err: unknown): boolean {
  const name = errorName(err);
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return (
    name === 'SlowDown' ||
    name === 'ServiceUnavailable' ||
    name === 'Throttling' ||
    name === 'ThrottlingException' ||
    status === 503 ||
    status === 429
  );
}

/**
 * Worth sending again: throttling, a server error, a connection lost before the answer (every copy request is
 * idempotent), or a signature refused for a clock that has just been corrected from the server's Date.
 */
function isTransient(err: unknown): boolean {
  if (isThrottling(err) || NETWORK_ERRORS.has(errorName(err))) return true;
  const metadata = (err as { $metadata?: { httpStatusCode?: number; clockSkewCorrected?: boolean } }).$metadata;
  if (metadata?.clockSkewCorrected) return true;
  const status = metadata?.httpStatusCode ?? 0;
  if (status >= 500) return true;
  // A connection dropped mid-answer surfaces without an HTTP status.
  return status === 0 && /socket hang up|ECONNRESET|EPIPE|other side closed|premature close/i.test((err as Error).message ?? '');
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function byteRanges(size: number, partSize: number): { first: number; last: number }[] {
  const ranges = [];
  for (let first = 0; first < size; first += partSize) ranges.push({ first, last: Math.min(first + partSize, size) - 1 });
  return ranges;
}

/** A copy lands in the standard class unless told otherwise; keep the source's class. */
function keptStorageClass(storageClass: string | undefined): { StorageClass?: StorageClass } {
  return storageClass && storageClass !== 'STANDARD' ? { StorageClass: storageClass as StorageClass } : {};
}

async function abortIncompleteUploads(s3: S3Client, bucket: string, signal: AbortSignal): Promise<number> {
  let aborted = 0;
  let markers: { KeyMarker?: string; UploadIdMarker?: string } = {};
  for (;;) {
    const answer = await callAws(`list incomplete uploads of s3://${bucket}`, () =>
      s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, ...markers }), { abortSignal: signal }),
    );
    for (const upload of answer.Uploads ?? []) {
      await callAws(`abort the incomplete upload of ${upload.Key}`, () =>
        s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }), { abortSignal: signal }),
      );
      aborted++;
    }
    if (!answer.IsTruncated) return aborted;
    markers = { KeyMarker: answer.NextKeyMarker, UploadIdMarker: answer.NextUploadIdMarker };
  }
}

function isMissingKey(err: unknown): boolean {
  const name = (err as { name?: string }).name;
  return name === 'NoSuchKey' || name === 'NotFound';
}

/** An object S3 will never copy as it is (archived, or changed while its parts were copied) fails the run; the rest is retried. */
function copyFailure(err: unknown, key: string): Error {
  const name = (err as { name?: string }).name;
  if (name === 'InvalidObjectState') {
    return ApplicationFailure.create({
      type: 'ObjectNotCopyable',
      message: `'${key}' is archived (restore it first): ${(err as Error).message}`,
      nonRetryable: true,
    });
  }
  if (name === 'PreconditionFailed') {
    // The object changed after it was listed: the retried attempt lists it again.
    return ApplicationFailure.create({ type: 'SourceChanged', message: `'${key}' changed while it was copied`, nonRetryable: false });
  }
  return awsFailure(err, `copy '${key}'`);
}
