/**
 * One runbook at a time per ECS service: a run holds the service it targets
 * and the services its memo lists (db-migration's writers), as Temporal's
 * visibility sees them, for as long as it is open.
 */
import assert from 'node:assert/strict';
import { createDeployRunsActivities } from '../../src/activities/deploy-runs.js';
import { rejectSignal } from '../../src/messages.js';
import type { LedgerActivities } from '../fixtures/ledger-activities.js';
import { outcome, runbookInput, statusWhen, useStubWorker } from '../helpers/stub-worker.js';
import { waitUntil } from '../helpers/wait-until.js';

const ledger: LedgerActivities = {
  async ledgerPreflight({ items }) {
    return { items };
  },
  async ledgerApply() {},
  async ledgerUndo() {},
};

describe('the service lock across runbooks', () => {
  const stubs = useStubWorker(['ledgerPreflight', 'ledgerApply', 'ledgerUndo']);

  it('finds the open runs that target a service or list it in their memo, and forgets them once closed', async () => {
    const { start, client } = stubs.serve(ledger);
    const env = `lock-${process.pid}-${Date.now()}`;
    const holder = await start(
      'ledgerSwap',
      runbookInput('ledger-swap', { name: 'books', items: 1, slowMs: 0 }, { env, services: ['writer-a', 'writer-b'] }),
    );
    await statusWhen(holder, (s) => s.phase === 'waiting');
    const runs = createDeployRunsActivities({ temporal: async () => client });
    const holders = (service: string, except = 'someone-else') => runs.findServiceHolders({ env, service, except });

    await waitUntil(async () => (await holders('writer-b')).includes(holder.workflowId), {
      timeoutMs: 10_000,
      what: 'visibility to list the holder with its memo',
    });
    assert.deepEqual(await holders('one'), [holder.workflowId], 'the target (here "one") is held');
    assert.deepEqual(await holders('writer-a'), [holder.workflowId], 'a service in the memo is held');
    assert.deepEqual(await holders('unrelated'), []);
    assert.deepEqual(await holders('writer-a', holder.workflowId), [], 'a run does not hold against itself');

    await holder.signal(rejectSignal, { by: 'alice', checkpoint: 'delete-old', reason: 'lock seen' });
    await outcome(holder);
    await waitUntil(async () => (await holders('writer-a')).length === 0, {
      timeoutMs: 10_000,
      what: 'the closed run to release the service',
    });
  });
});
