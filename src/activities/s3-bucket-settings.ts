/**
 * A bucket's settings, read from the old bucket and given to the new one, so
 * the new bucket is at least as protected: who may reach it (policy, ACL,
 * ownership, public access block), what keeps its data (versioning, object
 * lock, replication, lifecycle), and what else the application relies on
 * (encryption, CORS, logging, notifications, requester pays, tags).
 *
 * A setting the old bucket does not have is absent; one that cannot be read
 * is listed, never guessed; one that cannot be given to the new bucket is
 * named (`notCopied`) so the `delete-old` prompt can say so.
 */
import {
  GetBucketAclCommand,
  GetBucketCorsCommand,
  GetBucketEncryptionCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketLoggingCommand,
  GetBucketNotificationConfigurationCommand,
  GetBucketOwnershipControlsCommand,
  GetBucketPolicyCommand,
  GetBucketReplicationCommand,
  GetBucketRequestPaymentCommand,
  GetBucketTaggingCommand,
  GetBucketVersioningCommand,
  GetObjectLockConfigurationCommand,
  GetPublicAccessBlockCommand,
  PutBucketAclCommand,
  PutBucketCorsCommand,
  PutBucketEncryptionCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketLoggingCommand,
  PutBucketNotificationConfigurationCommand,
  PutBucketOwnershipControlsCommand,
  PutBucketPolicyCommand,
  PutBucketReplicationCommand,
  PutBucketRequestPaymentCommand,
  PutBucketTaggingCommand,
  PutBucketVersioningCommand,
  PutObjectLockConfigurationCommand,
  PutPublicAccessBlockCommand,
  type CORSRule,
  type Grant,
  type LifecycleRule,
  type LoggingEnabled,
  type NotificationConfiguration,
  type ObjectLockRule,
  type ObjectOwnership,
  type Owner,
  type PublicAccessBlockConfiguration,
  type ReplicationConfiguration,
  type S3Client,
  type ServerSideEncryptionRule,
  type Tag,
} from '@aws-sdk/client-s3';
import { abortable, awsFailure, callAws } from './aws.js';
import { rewriteBucketPolicy } from './bucket-names.js';

/** The settings a new bucket copies from the old one. Plain JSON: it travels through workflow history. */
export interface BucketSettings {
  region: string;
  versioning: 'Enabled' | 'Suspended' | 'Off';
  /** Default encryption rules; absent when the bucket has none. */
  encryption?: ServerSideEncryptionRule[];
  publicAccessBlock?: PublicAccessBlockConfiguration;
  tags: Tag[];
  /** The bucket policy document (JSON text), naming the old bucket. */
  policy?: string;
  ownership?: ObjectOwnership;
  /** The ACL, where ACLs are in force (not under BucketOwnerEnforced). */
  acl?: { owner?: Owner; grants: Grant[] };
  lifecycle?: LifecycleRule[];
  cors?: CORSRule[];
  logging?: LoggingEnabled;
  notification?: NotificationConfiguration;
  replication?: ReplicationConfiguration;
  /** Object lock can only be switched on when a bucket is created. */
  objectLock?: { rule?: ObjectLockRule };
  requesterPays?: boolean;
  /** Settings that could not be read (an emulator without that API): they are not copied, and the result says so. */
  unreadable: string[];
}

export interface AppliedSettings {
  /** Settings given to the bucket. */
  applied: string[];
  /** Settings of the source not given to it, and why. */
  notCopied: string[];
}

export function errorName(err: unknown): string | undefined {
  return (err as { name?: string }).name;
}

/** The HTTP status of an S3 error: HEAD requests have no body, so their errors carry only that. */
export function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/** Answers of an endpoint that does not implement an API. */
function notImplemented(err: unknown): boolean {
  return httpStatus(err) === 501 || errorName(err) === 'NotImplemented' || errorName(err) === 'MethodNotAllowed';
}

export async function readSettings(s3: S3Client, bucket: string, region: string): Promise<BucketSettings> {
  const unreadable: string[] = [];
  const read = async <T>(what: string, notSet: string[], call: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await call();
    } catch (err) {
      if (notSet.includes(errorName(err) ?? '')) return undefined;
      if (notImplemented(err)) {
        unreadable.push(`${what} (${errorName(err)})`);
        return undefined;
      }
      throw awsFailure(err, `read the ${what} of s3://${bucket}`);
    }
  };
  const Bucket = bucket;
  const [
    versioning,
    encryption,
    publicAccessBlock,
    tagging,
    policy,
    ownership,
    acl,
    lifecycle,
    cors,
    logging,
    notification,
    replication,
    objectLock,
    payment,
  ] = await Promise.all([
    read('versioning', [], () => s3.send(new GetBucketVersioningCommand({ Bucket }), abortable())),
    read('default encryption', ['ServerSideEncryptionConfigurationNotFoundError'], () =>
      s3.send(new GetBucketEncryptionCommand({ Bucket }), abortable()),
    ),
    read('public access block', ['NoSuchPublicAccessBlockConfiguration'], () =>
      s3.send(new GetPublicAccessBlockCommand({ Bucket }), abortable()),
    ),
    read('tags', ['NoSuchTagSet', 'NoSuchTagSetError'], () => s3.send(new GetBucketTaggingCommand({ Bucket }), abortable())),
    read('bucket policy', ['NoSuchBucketPolicy'], () => s3.send(new GetBucketPolicyCommand({ Bucket }), abortable())),
    read('ownership controls', ['OwnershipControlsNotFoundError'], () =>
      s3.send(new GetBucketOwnershipControlsCommand({ Bucket }), abortable()),
    ),
    read('ACL', [], () => s3.send(new GetBucketAclCommand({ Bucket }), abortable())),
    read('lifecycle rules', ['NoSuchLifecycleConfiguration'], () =>
      s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket }), abortable()),
    ),
    read('CORS', ['NoSuchCORSConfiguration'], () => s3.send(new GetBucketCorsCommand({ Bucket }), abortable())),
    read('logging', [], () => s3.send(new GetBucketLoggingCommand({ Bucket }), abortable())),
    read('notifications', [], () => s3.send(new GetBucketNotificationConfigurationCommand({ Bucket }), abortable())),
    read('replication', ['ReplicationConfigurationNotFoundError'], () => s3.send(new GetBucketReplicationCommand({ Bucket }), abortable())),
    read('object lock', ['ObjectLockConfigurationNotFoundError'], () =>
      s3.send(new GetObjectLockConfigurationCommand({ Bucket }), abortable()),
    ),
    read('requester pays', [], () => s3.send(new GetBucketRequestPaymentCommand({ Bucket }), abortable())),
  ]);
  // An endpoint that ignores ?requestPayment answers with something else: no Payer means it was not read.
  if (payment && !payment.Payer) unreadable.push('requester pays (no answer from the endpoint)');
  const rules = encryption?.ServerSideEncryptionConfiguration?.Rules;
  const objectOwnership = ownership?.OwnershipControls?.Rules?.[0]?.ObjectOwnership;
  const notifications = notification ? pickNotifications(notification) : undefined;
  return {
    region,
    versioning: versioning?.Status === 'Enabled' || versioning?.Status === 'Suspended' ? versioning.Status : 'Off',
    ...(rules?.length ? { encryption: rules } : {}),
    ...(publicAccessBlock?.PublicAccessBlockConfiguration ? { publicAccessBlock: publicAccessBlock.PublicAccessBlockConfiguration } : {}),
    // aws:* tags belong to AWS services (CloudFormation, ...) and cannot be set by anyone else.
    tags: (tagging?.TagSet ?? []).filter((t) => !t.Key?.startsWith('aws:')),
    ...(policy?.Policy ? { policy: policy.Policy } : {}),
    ...(objectOwnership ? { ownership: objectOwnership } : {}),
    // Under BucketOwnerEnforced ACLs are off: there is nothing to carry, and S3 refuses to set one.
    ...(acl && objectOwnership !== 'BucketOwnerEnforced' && hasGrantsBeyondOwner(acl.Grants ?? [], acl.Owner)
      ? { acl: { ...(acl.Owner ? { owner: acl.Owner } : {}), grants: acl.Grants ?? [] } }
      : {}),
    ...(lifecycle?.Rules?.length ? { lifecycle: lifecycle.Rules } : {}),
    ...(cors?.CORSRules?.length ? { cors: cors.CORSRules } : {}),
    ...(logging?.LoggingEnabled?.TargetBucket ? { logging: logging.LoggingEnabled } : {}),
    ...(notifications ? { notification: notifications } : {}),
    ...(replication?.ReplicationConfiguration?.Rules?.length ? { replication: replication.ReplicationConfiguration } : {}),
    ...(objectLock?.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled'
      ? { objectLock: objectLock.ObjectLockConfiguration.Rule ? { rule: objectLock.ObjectLockConfiguration.Rule } : {} }
      : {}),
    ...(payment?.Payer === 'Requester' ? { requesterPays: true } : {}),
    unreadable,
  };
}

/** A new bucket's ACL is its owner's full control; anything more is worth carrying. */
function hasGrantsBeyondOwner(grants: Grant[], owner: Owner | undefined): boolean {
  return grants.some((g) => !(g.Permission === 'FULL_CONTROL' && g.Grantee?.Type === 'CanonicalUser' && g.Grantee.ID === owner?.ID));
}

/** Only the destinations: the SDK's answer also carries response metadata. */
function pickNotifications(n: NotificationConfiguration): NotificationConfiguration | undefined {
  const picked: NotificationConfiguration = {
    ...(n.TopicConfigurations?.length ? { TopicConfigurations: n.TopicConfigurations } : {}),
    ...(n.QueueConfigurations?.length ? { QueueConfigurations: n.QueueConfigurations } : {}),
    ...(n.LambdaFunctionConfigurations?.length ? { LambdaFunctionConfigurations: n.LambdaFunctionConfigurations } : {}),
    ...(n.EventBridgeConfiguration ? { EventBridgeConfiguration: n.EventBridgeConfiguration } : {}),
  };
  return Object.keys(picked).length ? picked : undefined;
}

/** Refusals that mean "this setting cannot be given to this bucket", not "try again". */
const REFUSED = new Set([
  'InvalidRequest',
  'InvalidArgument',
  'MalformedXML',
  'InvalidTargetBucketForLogging',
  'InvalidBucketState',
  'AccessDenied',
  'NotImplemented',
  'MethodNotAllowed',
]);

/**
 * Gives `bucket` the settings. Each is a PUT of the whole configuration:
 * applying twice is the same as once. Access settings come first (ownership,
 * public access block, ACL, policy), so the bucket is never more open than the
 * old one while the rest is set. A protective setting that cannot be set
 * fails the step; a setting that only serves the application (CORS, logging,
 * notifications, replication, lifecycle, requester pays) is named instead.
 */
export async function applySettings(s3: S3Client, bucket: string, like: BucketSettings, source: string): Promise<AppliedSettings> {
  const applied: string[] = [`region ${like.region}`];
  const notCopied = like.unreadable.map((what) => `${what}: could not be read from the source`);
  const Bucket = bucket;
  const must = (what: string, call: () => Promise<unknown>) =>
    callAws(`set the ${what} of s3://${bucket}`, call).then(() => applied.push(what));
  const tryTo = async (what: string, call: () => Promise<unknown>) => {
    try {
      await call();
      applied.push(what);
    } catch (err) {
      if (!REFUSED.has(errorName(err) ?? '') && !notImplemented(err)) throw awsFailure(err, `set the ${what} of s3://${bucket}`);
      notCopied.push(`${what}: ${errorName(err)}: ${(err as Error).message}`);
    }
  };

  if (like.ownership) {
    const ownership = like.ownership;
    await must(`object ownership ${ownership}`, () =>
      s3.send(
        new PutBucketOwnershipControlsCommand({ Bucket, OwnershipControls: { Rules: [{ ObjectOwnership: ownership }] } }),
        abortable(),
      ),
    );
  }
  if (like.publicAccessBlock) {
    const block = like.publicAccessBlock;
    await must('public access block', () =>
      s3.send(new PutPublicAccessBlockCommand({ Bucket, PublicAccessBlockConfiguration: block }), abortable()),
    );
  }
  if (like.acl) {
    const { owner, grants } = like.acl;
    await must(`ACL (${grants.length} grants)`, () =>
      s3.send(
        new PutBucketAclCommand({ Bucket, AccessControlPolicy: { ...(owner ? { Owner: owner } : {}), Grants: grants } }),
        abortable(),
      ),
    );
  }
  if (like.policy) {
    const policy = rewriteBucketPolicy(like.policy, source, bucket);
    await must('bucket policy (naming the new bucket)', () => s3.send(new PutBucketPolicyCommand({ Bucket, Policy: policy }), abortable()));
  }
  if (like.versioning === 'Enabled') {
    await must('versioning', () =>
      s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Enabled' } }), abortable()),
    );
  } else if (like.versioning === 'Suspended') {
    notCopied.push('versioning: suspended on the source; a new bucket starts unversioned, which keeps the same single-version behaviour');
  }
  if (like.encryption) {
    const rules = like.encryption;
    await must('default encryption', () =>
      s3.send(new PutBucketEncryptionCommand({ Bucket, ServerSideEncryptionConfiguration: { Rules: rules } }), abortable()),
    );
  }
  if (like.objectLock?.rule) {
    const rule = like.objectLock.rule;
    await must('object lock default retention', () =>
      s3.send(
        new PutObjectLockConfigurationCommand({ Bucket, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: rule } }),
        abortable(),
      ),
    );
  }
  if (like.lifecycle) {
    const rules = like.lifecycle;
    await tryTo(`${rules.length} lifecycle rules`, () =>
      s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket, LifecycleConfiguration: { Rules: rules } }), abortable()),
    );
  }
  if (like.cors) {
    const rules = like.cors;
    await tryTo(`${rules.length} CORS rules`, () =>
      s3.send(new PutBucketCorsCommand({ Bucket, CORSConfiguration: { CORSRules: rules } }), abortable()),
    );
  }
  if (like.logging) {
    // A bucket that logged into itself logs into the new bucket; the old one is going away.
    const logging = { ...like.logging, TargetBucket: like.logging.TargetBucket === source ? bucket : like.logging.TargetBucket };
    await tryTo(`access logging to s3://${logging.TargetBucket}/${logging.TargetPrefix ?? ''}`, () =>
      s3.send(new PutBucketLoggingCommand({ Bucket, BucketLoggingStatus: { LoggingEnabled: logging } }), abortable()),
    );
  }
  if (like.notification) {
    const notification = like.notification;
    await tryTo('event notifications', () =>
      s3.send(new PutBucketNotificationConfigurationCommand({ Bucket, NotificationConfiguration: notification }), abortable()),
    );
  }
  if (like.replication) {
    const replication = like.replication;
    await tryTo('replication', () =>
      s3.send(new PutBucketReplicationCommand({ Bucket, ReplicationConfiguration: replication }), abortable()),
    );
  }
  if (like.requesterPays) {
    await tryTo('requester pays', () =>
      s3.send(new PutBucketRequestPaymentCommand({ Bucket, RequestPaymentConfiguration: { Payer: 'Requester' } }), abortable()),
    );
  }
  if (like.tags.length) {
    await must(`${like.tags.length} tags`, () =>
      s3.send(new PutBucketTaggingCommand({ Bucket, Tagging: { TagSet: like.tags } }), abortable()),
    );
  }
  return { applied, notCopied };
}

/**
 * What the old bucket has that a bucket made elsewhere (by Terraform) lacks:
 * named, so the approver sees where the new bucket is less protected or
 * configured than the old one. Presence is compared, not equality: Terraform
 * owns the new bucket's values.
 */
export function missingSettings(old: BucketSettings, made: BucketSettings): string[] {
  const missing: string[] = [];
  const lacks = (what: string, has: (s: BucketSettings) => unknown) => {
    if (has(old) && !has(made)) missing.push(`${what}: the old bucket has it, the new one (made by Terraform) does not`);
  };
  lacks('versioning', (s) => s.versioning === 'Enabled');
  lacks('default encryption', (s) => s.encryption);
  for (const flag of ['BlockPublicAcls', 'IgnorePublicAcls', 'BlockPublicPolicy', 'RestrictPublicBuckets'] as const)
    lacks(`public access block ${flag}`, (s) => s.publicAccessBlock?.[flag]);
  lacks('bucket policy', (s) => s.policy);
  lacks('object ownership', (s) => s.ownership && s.ownership !== 'ObjectWriter');
  lacks('lifecycle rules', (s) => s.lifecycle);
  lacks('CORS rules', (s) => s.cors);
  lacks('access logging', (s) => s.logging);
  lacks('event notifications', (s) => s.notification);
  lacks('replication', (s) => s.replication);
  lacks('object lock', (s) => s.objectLock);
  lacks('requester pays', (s) => s.requesterPays);
  lacks('tags', (s) => s.tags.length);
  return missing;
}
