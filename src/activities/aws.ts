/**
 * AWS clients for activities, and the one place AWS errors become Temporal
 * failures. Runbook inputs carry only an `AwsConnection` (region, endpoint,
 * profile); credentials come from the machine the worker runs on.
 */
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { CodePipelineClient } from '@aws-sdk/client-codepipeline';
import { ECSClient } from '@aws-sdk/client-ecs';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { RDSClient } from '@aws-sdk/client-rds';
import { S3Client } from '@aws-sdk/client-s3';
import http from 'node:http';
import https from 'node:https';
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { AwsConnection } from '../config.js';
import { FailureType } from '../messages.js';

export type { AwsConnection };

export interface AwsClients {
  readonly ecs: ECSClient;
  readonly autoScaling: AutoScalingClient;
  readonly elbv2: ElasticLoadBalancingV2Client;
  readonly s3: S3Client;
  readonly rds: RDSClient;
  readonly codePipeline: CodePipelineClient;
}

/** How activities get clients; tests may hand in their own. */
export type AwsClientFactory = (connection: AwsConnection) => AwsClients;

/** What every AWS activity factory receives (a slice of `ActivityDeps`). */
export interface AwsDeps {
  aws?: AwsClientFactory;
}

const clientsByConnection = new Map<string, AwsClients>();

/**
 * Clients for one connection, created on first use and then reused, so a
 * worker polling ECS for 45 minutes keeps one connection pool, not hundreds.
 */
export const awsClients: AwsClientFactory = (connection) => {
  const key = JSON.stringify([connection.region, connection.endpoint ?? null, connection.profile ?? null]);
  let clients = clientsByConnection.get(key);
  if (!clients) {
    clients = lazyClients(connection);
    clientsByConnection.set(key, clients);
  }
  return clients;
};

export function clientFactory(deps: AwsDeps): AwsClientFactory {
  return deps.aws ?? awsClients;
}

function lazyClients(connection: AwsConnection): AwsClients {
  // `profile` makes the SDK's default chain read that profile (the same as fromIni); unset, the chain
  // tries env vars, SSO, ~/.aws and instance roles in the usual order.
  const common = {
    region: connection.region,
    ...(connection.endpoint ? { endpoint: connection.endpoint } : {}),
    ...(connection.profile ? { profile: connection.profile } : {}),
  };
  const cache: Partial<AwsClients> = {};
  const once = <K extends keyof AwsClients>(name: K, create: () => AwsClients[K]): AwsClients[K] => (cache[name] ??= create());
  return {
    get ecs() {
      return once('ecs', () => new ECSClient(common));
    },
    get autoScaling() {
      return once('autoScaling', () => new AutoScalingClient(common));
    },
    get elbv2() {
      return once('elbv2', () => new ElasticLoadBalancingV2Client(common));
    },
    get s3() {
      return once(
        's3',
        () =>
          new S3Client({
            ...common,
            // Emulators serve buckets by path; virtual-host addressing would need DNS for every bucket.
            forcePathStyle: Boolean(connection.endpoint),
            // Keep-alive sockets for every copy request in flight (the copy's ceiling, s3-copy.ts) plus its listings:
            // with fewer, requests queue for a socket, and without keep-alive each one pays a TCP (and TLS) handshake.
            requestHandler: { httpAgent: keepAliveAgent(http.Agent), httpsAgent: keepAliveAgent(https.Agent) },
            // No checksum of request bodies unless S3 requires one: the runbooks send copies and listings, not data.
            requestChecksumCalculation: 'WHEN_REQUIRED',
          }),
      );
    },
    get rds() {
      return once('rds', () => new RDSClient(common));
    },
    get codePipeline() {
      return once('codePipeline', () => new CodePipelineClient(common));
    },
  };
}

/** Sockets per S3 client: the copy's most requests in flight (MAX_REQUESTS_IN_FLIGHT, 256), its listings and a margin. */
const S3_SOCKETS = 300;

function keepAliveAgent<A extends http.Agent>(Agent: new (options: http.AgentOptions) => A): A {
  return new Agent({ keepAlive: true, maxSockets: S3_SOCKETS, maxFreeSockets: S3_SOCKETS });
}

/** Send options for every AWS call an activity makes: cancelling the activity aborts the request. */
export function abortable(): { abortSignal: AbortSignal } {
  return { abortSignal: Context.current().cancellationSignal };
}

/** The input field a missing resource names, by the AWS error that says it is missing. */
const FIELD_OF_NOT_FOUND: Record<string, string> = {
  ClusterNotFoundException: 'cluster',
  ServiceNotFoundException: 'service',
  ServiceNotActiveException: 'service',
  TargetGroupNotFoundException: 'targetGroup',
};

const BAD_INPUT_ERRORS = new Set(['InvalidParameterException', 'ValidationError', 'ValidationException', 'InvalidParameterValue']);
const THROTTLING_ERRORS = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'SlowDown',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'ServerException',
  'InternalFailure',
]);
const ACCESS_ERRORS = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'UnauthorizedOperation',
  'CredentialsProviderError',
  'ExpiredToken',
  'InvalidClientTokenId',
]);

interface AwsError {
  name: string;
  message: string;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
}

/** 403s that a later attempt can pass: credentials the SDK renews, a clock that drifted. */
const RENEWABLE_ERRORS = new Set([
  'ExpiredToken',
  'ExpiredTokenException',
  'RequestExpired',
  'RequestTimeTooSkewed',
  'TokenRefreshRequired',
]);

/**
 * Turns an error from an AWS call into the failure Temporal should see:
 * a missing resource or bad parameter is the operator's input (non-retryable
 * `InvalidInput`, naming `field`); throttling and server errors are retried;
 * missing permissions are not (retrying cannot grant them).
 */

export function awsFailure(err: unknown, what: string, field?: string): Error {
  if (err instanceof ApplicationFailure || err instanceof CancelledFailure) return err;
  if (!isAwsError(err)) return err instanceof Error ? err : new Error(String(err));
  // The SDK reports an aborted request as AbortError; Temporal must see the cancellation as such.
  if (err.name === 'AbortError') return new CancelledFailure(`${what}: cancelled`);
  const message = `${what}: ${err.name}: ${err.message}`;
  const blamed = FIELD_OF_NOT_FOUND[err.name] ?? (BAD_INPUT_ERRORS.has(err.name) ? field : undefined);
  if (blamed) return invalidInput(blamed, `${what}: ${err.message}`);
  if (BAD_INPUT_ERRORS.has(err.name))
    return ApplicationFailure.create({ type: 'AwsInvalidRequest', message, nonRetryable: true, cause: err });
  const status = err.$metadata?.httpStatusCode ?? 0;
  // A 403 under any name (S3 answers a bucket policy's Deny as plain "Forbidden") will not change by retrying.
  if (ACCESS_ERRORS.has(err.name) || (status === 403 && !RENEWABLE_ERRORS.has(err.name)))
    return ApplicationFailure.create({ type: 'AwsAccessDenied', message, nonRetryable: true, cause: err });
  const transient = THROTTLING_ERRORS.has(err.name) || Boolean(err.$retryable) || status >= 500;
  return ApplicationFailure.create({ type: transient ? 'AwsTransient' : 'AwsError', message, nonRetryable: false, cause: err });
}

/** Bad input found by looking at AWS: the CLI reports it and exits 2, and nothing has changed. */
export function invalidInput(field: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.invalidInput, message: `${field}: ${message}`, nonRetryable: true });
}

/** Runs one AWS call and maps what it throws (see `awsFailure`). */
export async function callAws<T>(what: string, call: () => Promise<T>, field?: string): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw awsFailure(err, what, field);
  }
}

function isAwsError(err: unknown): err is AwsError {
  return err instanceof Error && typeof (err as { name?: unknown }).name === 'string';
}
