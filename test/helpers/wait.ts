/** Waiting on conditions, never on fixed sleeps. */
import { Client, Connection } from '@temporalio/client';
import { statusQuery, type RunStatus } from '../../src/messages.js';
import { testStack } from '../setup.js';
import { waitUntil } from './wait-until.js';

export { waitUntil };

let client: Client | undefined;

export async function temporalClient(): Promise<Client> {
  if (!client) {
    const { temporalAddress, namespace } = testStack();
    client = new Client({ connection: await Connection.connect({ address: temporalAddress }), namespace });
  }
  return client;
}

export async function queryStatus(workflowId: string): Promise<RunStatus> {
  return (await temporalClient()).workflow.getHandle(workflowId).query(statusQuery);
}

/** Polls the run's status query until the predicate holds; returns that status. */
export async function waitForStatus(workflowId: string, predicate: (status: RunStatus) => boolean, timeoutMs = 60_000): Promise<RunStatus> {
  let seen: RunStatus | undefined;
  await waitUntil(
    async () => {
      seen = await queryStatus(workflowId);
      return predicate(seen);
    },
    { timeoutMs, what: () => `status of ${workflowId} to match (last phase: ${seen?.phase}, step: ${seen?.currentStep})` },
  );
  return seen!;
}
