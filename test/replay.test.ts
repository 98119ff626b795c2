/**
 * Committed histories replayed against today's workflow code: a change to the
 * engine or a runbook that would break runs already in flight fails here
 * (use `patched()` for such changes). Record new ones with
 * `temporal workflow show -w <id> -o json > test/histories/<name>.json`.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { testStack } from './setup.js';
import { runbook } from './helpers/cli.js';
import { temporalClient, waitForStatus } from './helpers/wait.js';

const historiesDir = fileURLToPath(new URL('../../test/histories/', import.meta.url));
const histories = readdirSync(historiesDir).filter((f) => f.endsWith('.json'));

describe('replay of recorded histories', () => {
  it('has histories to replay', () => {
    assert.ok(histories.length >= 3, `found ${histories.length} in ${historiesDir}`);
  });

  for (const file of histories) {
    it(`replays ${file} without nondeterminism`, async () => {
      const history = historyFromJSON(JSON.parse(readFileSync(historiesDir + file, 'utf8')));
      await Worker.runReplayHistory({ workflowBundle: { codePath: testStack().workflowBundlePath } }, history, file);
    });
  }

  it("replays a run of today's code recorded just now (resolve step, wait IDs, refused and accepted signals)", async () => {
    const name = `replay-${process.pid}`;
    const id = `ledger-swap:sandbox:${name}`;
    const started = await runbook(['start', 'ledger-swap', '--env', 'sandbox', '--set', `name=${name}`, '--wait']);
    assert.equal(started.exitCode, 0, started.stderr);
    const handle = (await temporalClient()).workflow.getHandle(id);
    await handle.signal('approve', { by: 7 });
    assert.equal((await runbook(['approve', id, '--checkpoint', 'delete-old', '--comment', 'ok'])).exitCode, 0);
    await waitForStatus(id, (s) => s.phase === 'succeeded');
    const history = await handle.fetchHistory();
    await Worker.runReplayHistory({ workflowBundle: { codePath: testStack().workflowBundlePath } }, history, id);
    // RUNBOOK_RECORD_HISTORIES=1 refreshes the committed copy that guards later changes.
    if (process.env.RUNBOOK_RECORD_HISTORIES) writeFileSync(historiesDir + 'ledger-swap-resolved-approved.json', historyToJSON(history));
  });

  it('catches code that no longer matches its history', async () => {
    const history = historyFromJSON(JSON.parse(readFileSync(historiesDir + 'ledger-swap-approved.json', 'utf8')));
    // As if the code once ran the stage step with another activity: today's code must be refused on replay.
    const scheduled = history.events!.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'ledgerApply');
    scheduled!.activityTaskScheduledEventAttributes!.activityType = { name: 'ledgerUndo' };
    await assert.rejects(
      Worker.runReplayHistory({ workflowBundle: { codePath: testStack().workflowBundlePath } }, history, 'tampered'),
      (err: Error) => err.name === 'DeterminismViolationError' || /[Nn]ondetermin/.test(err.message),
    );
  });
});
