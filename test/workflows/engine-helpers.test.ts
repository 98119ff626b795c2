/**
 * Two engine helpers runbooks share: a read of what the run's own changes
 * made, which a dry run skips (`readUnlessDryRun`), and a failure that says
 * what is kept where (`keptOnFailure`), on a test-only runbook with stub activities.
 */
import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType, statusQuery } from '../../src/messages.js';
import { outcome, runbookInput, useStubWorker } from '../helpers/stub-worker.js';

function stubs(verify: () => Promise<{ matched: number }>) {
  const calls: string[] = [];
  return {
    calls,
    activities: {
      async probeCopy() {
        calls.push('copy');
        return { copied: 3 };
      },
      async probeVerify() {
        calls.push('verify');
        return verify();
      },
    },
  };
}

describe('engine helpers, on the workflow tier', () => {
  const worker = useStubWorker(['probeCopy', 'probeVerify']);

  it('a dry run skips a read of what its changes would have made, saying what it would do', async () => {
    const s = stubs(async () => ({ matched: 3 }));
    const { start } = worker.serve(s.activities);
    const handle = await start('engineHelpersProbe', runbookInput('probe', {}, { dryRun: true }));
    assert.deepEqual(await handle.result(), { copied: 0, matched: 0 });
    assert.deepEqual(s.calls, []);
    const verify = (await handle.query(statusQuery)).steps.find((st) => st.name === 'verify')!;
    assert.deepEqual([verify.status, verify.detail], ['skipped', 'would compare b with a']);
  });

  it('a real run takes the read as a step', async () => {
    const s = stubs(async () => ({ matched: 3 }));
    const { start } = worker.serve(s.activities);
    const handle = await start('engineHelpersProbe', runbookInput('probe', {}));
    assert.deepEqual(await handle.result(), { copied: 3, matched: 3 });
    assert.deepEqual(s.calls, ['copy', 'verify']);
    const verify = (await handle.query(statusQuery)).steps.find((st) => st.name === 'verify')!;
    assert.deepEqual([verify.status, verify.detail], ['done', '3 match']);
  });

  it('a failure after the change says what is kept where', async () => {
    const s = stubs(async () => {
      throw ApplicationFailure.nonRetryable('2 objects differ.', 'CopyMismatch');
    });
    const { start } = worker.serve(s.activities);
    const handle = await start('engineHelpersProbe', runbookInput('probe', {}));
    const ended = await outcome(handle);
    assert.equal(ended.errorType, FailureType.failed);
    assert.equal(ended.message, '2 objects differ. Nothing was deleted: a is untouched; b is kept as far as it was copied.');
  });
});
