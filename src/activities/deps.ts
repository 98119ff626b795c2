/** The clients activities are built from, as the worker process provides them. */
import type { ActivityDeps } from './index.js';
import { awsClients } from './aws.js';
import { recordedTaskFacts } from './task-facts.js';

/**
 * Set only for workers of an emulated environment (the sandbox): the bucket in
 * which its ECS scheduler simulator records exit codes and image digests,
 * which the emulator's ECS cannot report.
 */
export const TASK_RECORDS_BUCKET_ENV = 'RUNBOOK_TASK_RECORDS_BUCKET';

export function createDeps(env: NodeJS.ProcessEnv = process.env): ActivityDeps {
  const recordsBucket = env[TASK_RECORDS_BUCKET_ENV];
  return { aws: awsClients, ...(recordsBucket ? { taskFacts: recordedTaskFacts(recordsBucket, { aws: awsClients }) } : {}) };
}
