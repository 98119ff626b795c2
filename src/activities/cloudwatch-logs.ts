/**
 * CloudWatch Logs: following one log stream forward from a token, as
 * `aws logs tail --follow` does, so a retried activity resumes where the
 * last heartbeat left off instead of reading (or showing) lines twice.
 */
import { CloudWatchLogsClient, GetLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import type { AwsConnection } from '../config.js';
import { abortable, awsFailure } from './aws.js';

export type LogsClientFactory = (connection: AwsConnection) => CloudWatchLogsClient;

const clients = new Map<string, CloudWatchLogsClient>();

/** One client per connection, reused (as aws.ts does for the other services). */
export const logsClients: LogsClientFactory = (connection) => {
  const key = JSON.stringify([connection.region, connection.endpoint ?? null, connection.profile ?? null]);
  let client = clients.get(key);
  if (!client) {
    client = new CloudWatchLogsClient({
      region: connection.region,
      ...(connection.endpoint ? { endpoint: connection.endpoint } : {}),
      ...(connection.profile ? { profile: connection.profile } : {}),
    });
    clients.set(key, client);
  }
  return client;
};

export interface LogStreamRef {
  group: string;
  stream: string;
}

export interface LogPage {
  lines: string[];
  /** Where the next read starts; unchanged when nothing new was written. */
  nextToken: string | undefined;
}

const PAGE_EVENTS = 1_000;

/**
 * The lines written since `token` (from the start when unset). A stream that
 * does not exist yet (the task has not started logging) reads as empty.
 */
export async function readLogForward(logs: CloudWatchLogsClient, ref: LogStreamRef, token: string | undefined): Promise<LogPage> {
  const lines: string[] = [];
  let nextToken = token;
  for (;;) {
    let page;
    try {
      page = await logs.send(
        new GetLogEventsCommand({
          logGroupName: ref.group,
          logStreamName: ref.stream,
          startFromHead: true,
          limit: PAGE_EVENTS,
          ...(nextToken ? { nextToken } : {}),
        }),
        abortable(),
      );
    } catch (err) {
      if ((err as Error).name === 'ResourceNotFoundException') return { lines, nextToken };
      throw awsFailure(err, `read log stream ${ref.stream} in ${ref.group}`);
    }
    lines.push(...(page.events ?? []).map((e) => e.message ?? ''));
    // GetLogEvents returns the same forward token once the stream's end is reached.
    const reachedEnd = !page.events?.length || page.nextForwardToken === nextToken;
    nextToken = page.nextForwardToken ?? nextToken;
    if (reachedEnd) return { lines, nextToken };
  }
}
