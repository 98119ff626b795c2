/**
 * The engine's rules on the ledger fixture runbook, with in-memory stub
 * activities: compensation order, checkpoint timeouts, dry runs, refused
 * signals, cancellation. A real dev server and a real Worker, in seconds.
 */
import assert from 'node:assert/strict';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { approveSignal, rejectSignal, FailureType } from '../../src/messages.js';
import type { LedgerActivities, LedgerEffect } from '../fixtures/ledger-activities.js';
import type { LedgerParams } from '../fixtures/ledger-runbook.js';
import { outcome, runbookInput, statusWhen, useStubWorker } from '../helpers/stub-worker.js';

/** The ledger's activities in memory: every call in order, every failure on purpose. */
function stubLedger(options: { failUndoOf?: string } = {}) {
  const calls: string[] = [];
  /** Resolves when the copy has started (a slow copy only). */
  let copying: () => void = () => undefined;
  const copyStarted = new Promise<void>((resolve) => (copying = resolve));
  const activities: LedgerActivities = {
    async ledgerPreflight({ name, items }) {
      calls.push(`preflight ${name}`);
      if (name.startsWith('missing')) throw ApplicationFailure.nonRetryable(`name: ledger '${name}' does not exist`, 'InvalidInput');
      return { items };
    },
    async ledgerApply({ step, fail, slowMs = 0 }: LedgerEffect) {
      calls.push(`apply ${step}`);
      if (slowMs) {
        copying();
        const context = Context.current();
        const until = Date.now() + slowMs;
        while (Date.now() < until) {
          context.heartbeat();
          if (context.cancellationSignal.aborted) {
            // The unit of work in flight finishes before the activity stops.
            await new Promise((resolve) => setTimeout(resolve, 300));
            calls.push(`stopped ${step}`);
            throw new CancelledFailure('cancelled between units of work');
          }
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      if (fail) throw ApplicationFailure.nonRetryable(`${step} failed on purpose`, 'FixtureFailure');
    },
    async ledgerUndo({ step }) {
      calls.push(`undo ${step}`);
      if (step === options.failUndoOf) throw ApplicationFailure.nonRetryable(`undo of ${step} failed on purpose`, 'FixtureFailure');
    },
  };
  return { calls, activities, copyStarted };
}

const params = (overrides: Partial<LedgerParams> = {}): LedgerParams => ({ name: 'books', items: 3, slowMs: 0, ...overrides });
const input = (overrides: Partial<LedgerParams> = {}, run: Parameters<typeof runbookInput>[2] = {}) =>
  runbookInput('ledger-swap', params(overrides), run);
const stepStates = (steps: { name: string; status: string }[]) => steps.map((s) => `${s.name}:${s.status}`);

describe('engine rules, on the workflow tier', () => {
  const stubs = useStubWorker(['ledgerPreflight', 'ledgerApply', 'ledgerUndo']);

  it('undoes the changes newest first when a checkpoint is rejected, and ends rolled-back', async () => {
    const ledger = stubLedger();
    const { start } = stubs.serve(ledger.activities);
    const handle = await start('ledgerSwap', input());
    await statusWhen(handle, (s) => s.phase === 'waiting');
    await handle.signal(rejectSignal, { by: 'bob', checkpoint: 'delete-old', reason: 'copy incomplete' });
    const end = await outcome(handle);
    assert.equal(end.errorType, FailureType.rolledBack);
    assert.match(end.message ?? '', /checkpoint 'delete-old' rejected by bob: copy incomplete; 2 change\(s\) undone/);
    const status = await statusWhen(handle, (s) => s.phase !== 'waiting');
    assert.deepEqual(stepStates(status.steps), [
      'resolve:done',
      'preflight:done',
      'stage:compensated',
      'copy:compensated',
      'delete-old:failed',
      'delete-source:skipped',
    ]);
    assert.deepEqual(ledger.calls, ['preflight books', 'apply stage', 'apply copy', 'undo copy', 'undo stage']);
  });

  it('undoes a change that failed half-way too (its undo is registered before it runs)', async () => {
    const ledger = stubLedger();
    const { start } = stubs.serve(ledger.activities);
    const end = await outcome(await start('ledgerSwap', input({ failAt: 'copy' })));
    assert.equal(end.errorType, FailureType.rolledBack);
    assert.match(end.message ?? '', /copy failed on purpose; 2 change\(s\) undone/);
    assert.deepEqual(ledger.calls, ['preflight books', 'apply stage', 'apply copy', 'undo copy', 'undo stage']);
  });

  it('keeps undoing after an undo fails, and ends failed asking for a human', async () => {
    const ledger = stubLedger({ failUndoOf: 'copy' });
    const { start } = stubs.serve(ledger.activities);
    const handle = await start('ledgerSwap', input({ failAt: 'delete-source' }));
    await statusWhen(handle, (s) => s.phase === 'waiting');
    await handle.signal(approveSignal, { by: 'bob', checkpoint: 'delete-old' });
    const end = await outcome(handle);
    assert.equal(end.errorType, FailureType.failed);
    assert.match(end.message ?? '', /delete-source failed on purpose; undo failed for copy: manual action needed/);
    const status = await statusWhen(handle, () => true);
    assert.equal(status.phase, 'failed');
    assert.deepEqual(stepStates(status.steps).slice(2, 4), ['stage:compensated', 'copy:failed']);
    assert.deepEqual(ledger.calls.slice(-3), ['apply delete-source', 'undo copy', 'undo stage']);
  });

  it('a checkpoint that gets no decision in time rejects itself; the destructive step never runs', async () => {
    const ledger = stubLedger();
    const { start } = stubs.serve(ledger.activities);
    const policy = { approvers: ['*'], allowSelfApproval: true, timeoutMs: 3_600_000, timeoutsMs: { 'delete-old': 1_000 } };
    const handle = await start('ledgerSwap', input({}, { policy }));
    const waiting = await statusWhen(handle, (s) => s.phase === 'waiting');
    assert.ok(
      Date.parse(waiting.waitingFor!.timeoutAt) - Date.parse(waiting.waitingFor!.since) <= 1_000,
      'the per-checkpoint timeout applies',
    );
    const end = await outcome(handle);
    assert.equal(end.errorType, FailureType.rolledBack);
    assert.match(end.message ?? '', /checkpoint 'delete-old' timed out \(no decision within 1s\)/);
    const status = await statusWhen(handle, () => true);
    assert.deepEqual(
      status.decisions.map((d) => [d.decision, d.by]),
      [['rejected', 'timeout']],
    );
    assert.equal(ledger.calls.includes('apply delete-source'), false);
  });

  it('a dry run reads but changes nothing, and says what each change would do', async () => {
    const ledger = stubLedger();
    const { start } = stubs.serve(ledger.activities);
    const handle = await start('ledgerSwap', input({}, { dryRun: true }));
    assert.deepEqual(await handle.result(), { name: 'books', items: 3 });
    const status = await statusWhen(handle, () => true);
    assert.equal(status.phase, 'succeeded');
    assert.equal(status.dryRun, true);
    assert.deepEqual(stepStates(status.steps), [
      'resolve:done',
      'preflight:done',
      'stage:skipped',
      'copy:skipped',
      'delete-old:skipped',
      'delete-source:skipped',
    ]);
    for (const step of status.steps.slice(2)) assert.match(step.detail ?? '', /^would /, step.name);
    assert.deepEqual(ledger.calls, ['preflight books']);
  });

  it('refuses decisions that break the rules, records why, and still takes a valid one', async () => {
    const ledger = stubLedger();
    const { start } = stubs.serve(ledger.activities);
    const policy = { approvers: ['alice', 'bob'], allowSelfApproval: false, timeoutMs: 3_600_000 };
    const handle = await start('ledgerSwap', input({}, { policy, startedBy: 'alice', env: 'guarded' }));
    await statusWhen(handle, (s) => s.phase === 'waiting');
    await handle.signal(approveSignal, { by: 'mallory', checkpoint: 'delete-old' });
    await handle.signal(approveSignal, { by: 'alice', checkpoint: 'delete-old' });
    await handle.signal(approveSignal, { by: 'bob', checkpoint: 'qa' });
    await handle.signal(rejectSignal, { by: 'bob', checkpoint: 'delete-old', reason: ' ' });
    await handle.signal(approveSignal, { by: 'bob' });
    const refused = await statusWhen(handle, (s) => s.refusals.length === 5);
    assert.equal(refused.phase, 'waiting', 'refused decisions change nothing');
    assert.deepEqual(
      refused.refusals.map((r) => r.reason),
      [
        "'mallory' is not an approver in guarded (approvers: alice, bob)",
        "'alice' started this run and guarded requires approval by someone else",
        "the run waits at checkpoint 'delete-old', not 'qa'",
        'a rejection needs a reason',
        'a decision must name the checkpoint it decides (checkpoint)',
      ],
    );
    await handle.signal(approveSignal, { by: 'bob', checkpoint: 'delete-old', comment: 'looks right' });
    await handle.result();
    const status = await statusWhen(handle, () => true);
    assert.deepEqual(
      status.decisions.map((d) => [d.checkpoint, d.decision, d.by, d.comment]),
      [['delete-old', 'approved', 'bob', 'looks right']],
    );
    assert.deepEqual(ledger.calls, ['preflight books', 'apply stage', 'apply copy', 'apply delete-source']);
  });

  it('a preflight refusal fails as InvalidInput with nothing changed and nothing to undo', async () => {
    const ledger = stubLedger();
    const { start } = stubs.serve(ledger.activities);
    const end = await outcome(await start('ledgerSwap', input({ name: 'missing-one' })));
    assert.equal(end.errorType, FailureType.invalidInput);
    assert.match(end.message ?? '', /name: ledger 'missing-one' does not exist/);
    assert.deepEqual(ledger.calls, ['preflight missing-one']);
  });

  it('cancelling a waiting run undoes its changes and ends cancelled', async () => {
    const ledger = stubLedger();
    const { start } = stubs.serve(ledger.activities);
    const handle = await start('ledgerSwap', input());
    await statusWhen(handle, (s) => s.phase === 'waiting');
    await handle.cancel();
    await assert.rejects(handle.result());
    const status = await statusWhen(handle, () => true);
    assert.equal(status.phase, 'cancelled');
    assert.equal(status.steps.find((s) => s.name === 'delete-old')?.detail, 'cancelled while waiting');
    assert.deepEqual(ledger.calls, ['preflight books', 'apply stage', 'apply copy', 'undo copy', 'undo stage']);
  });

  it('a cancel during a change waits until the change has stopped before undoing it', async () => {
    const ledger = stubLedger();
    const { start } = stubs.serve(ledger.activities);
    const handle = await start('ledgerSwap', input({ slowMs: 60_000 }));
    await ledger.copyStarted;
    await handle.cancel();
    await assert.rejects(handle.result());
    const status = await statusWhen(handle, () => true);
    assert.equal(status.phase, 'cancelled');
    assert.deepEqual(ledger.calls, ['preflight books', 'apply stage', 'apply copy', 'stopped copy', 'undo copy', 'undo stage']);
  });

  it('a failure after the point of no return ends failed, saying what stands, never rolled-back', async () => {
    const ledger = stubLedger();
    const { start } = stubs.serve(ledger.activities);
    const handle = await start('ledgerSwap', input({ commitAfterStage: true }));
    await statusWhen(handle, (s) => s.phase === 'waiting');
    await handle.signal(rejectSignal, { by: 'bob', checkpoint: 'delete-old', reason: 'copy incomplete' });
    const end = await outcome(handle);
    assert.equal(end.errorType, FailureType.rejected, 'the cause, not RolledBack');
    assert.match(
      end.message ?? '',
      /rejected by bob: copy incomplete; 1 later change\(s\) undone, the rest stands: the stage of books stays in place/,
    );
    const status = await statusWhen(handle, (s) => s.phase !== 'waiting');
    assert.equal(status.phase, 'failed');
    assert.deepEqual(stepStates(status.steps), [
      'resolve:done',
      'preflight:done',
      'stage:done',
      'copy:compensated',
      'delete-old:failed',
      'delete-source:skipped',
    ]);
    assert.deepEqual(ledger.calls, ['preflight books', 'apply stage', 'apply copy', 'undo copy']);
  });
});
