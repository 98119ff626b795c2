/** Waiting on conditions, never on fixed sleeps. */
import { Client, Connection } from '@temporalio/client';
import { statusQuery, type RunStatus } from '../../src/messages.js';
import { testStack } from '../setup.js';

export async function waitUntil(check: () => Promise<boolean> | boolean, options: { timeoutMs: number; what: string | (() => string); intervalMs?: number }): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${typeof options.what === 'function' ? options.what() : options.what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 200));
  }
}

let client: Client | undefined;

export async function temporalClient(): Promise<Client> {
  if (!client) client = new Client({ connection: await Connection.connect({ address: testStack().temporalAddress }) });
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
