/**
 * Committed histories replayed against today's workflow code: a change to the
 * engine or a runbook that would break runs already in flight fails here
 * (use `patched()` for such changes). Record new ones with
 * `temporal workflow show -w <id> -o json > test/histories/<name>.json`.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { workflowTier } from './setup.js';

const historiesDir = fileURLToPath(new URL('../../../test/histories/', import.meta.url));
const histories = readdirSync(historiesDir).filter((f) => f.endsWith('.json'));

describe('replay of recorded histories', () => {
  it('has histories to replay', () => {
    assert.ok(histories.length >= 3, `found ${histories.length} in ${historiesDir}`);
  });

  for (const file of histories) {
    it(`replays ${file} without nondeterminism`, async () => {
      const history = historyFromJSON(JSON.parse(readFileSync(historiesDir + file, 'utf8')));
      await Worker.runReplayHistory({ workflowBundle: { codePath: workflowTier().workflowBundlePath } }, history, file);
    });
  }

  it('catches code that no longer matches its history', async () => {
    const history = historyFromJSON(JSON.parse(readFileSync(historiesDir + 'ledger-swap-approved.json', 'utf8')));
    // As if the code once ran the stage step with another activity: today's code must be refused on replay.
    const scheduled = history.events!.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'ledgerApply');
    scheduled!.activityTaskScheduledEventAttributes!.activityType = { name: 'ledgerUndo' };
    await assert.rejects(
      Worker.runReplayHistory({ workflowBundle: { codePath: workflowTier().workflowBundlePath } }, history, 'tampered'),
      (err: Error) => err.name === 'DeterminismViolationError' || /[Nn]ondetermin/.test(err.message),
    );
  });
});
