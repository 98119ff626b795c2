/**
 * Reading what a database migration left behind, as an operator would: the
 * app database's rows, where a writer's task definition points, and how often
 * the run retried each activity.
 */
import { DescribeTaskDefinitionCommand, type ECSClient } from '@aws-sdk/client-ecs';
import pg from 'pg';
import { sandbox } from '../setup.js';
import { temporalClient } from './wait.js';

/** Runs one query on a sandbox app database, as its owner. */
export async function queryApp<T extends pg.QueryResultRow>(instanceId: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: sandbox().db.databaseUrl(instanceId) });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

/** The database host a writer's task definition gives its first container. */
export async function databaseHostOf(ecs: ECSClient, taskDefinition: string): Promise<string | undefined> {
  const { taskDefinition: definition } = await ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition }));
  return definition?.containerDefinitions?.[0]?.environment?.find((e) => e.name === 'DATABASE_HOST')?.value;
}

/** How many times each activity type was started in the run: more than once means it was retried. */
export async function activityAttempts(id: string): Promise<Record<string, number>> {
  const history = await (await temporalClient()).workflow.getHandle(id).fetchHistory();
  const typeBySchedule = new Map<string, string>();
  const attempts: Record<string, number> = {};
  for (const event of history.events ?? []) {
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) typeBySchedule.set(String(event.eventId), scheduled.activityType!.name!);
    const started = event.activityTaskStartedEventAttributes;
    if (started) {
      const type = typeBySchedule.get(String(started.scheduledEventId))!;
      attempts[type] = Math.max(attempts[type] ?? 0, started.attempt ?? 1);
    }
  }
  return attempts;
}
