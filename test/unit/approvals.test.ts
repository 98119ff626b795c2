/** The approval rule, shared by the workflow's signal handlers and the CLI. */
import assert from 'node:assert/strict';
import type { DecideArgs, WaitingFor } from '../../src/messages.js';
import { refusalReason, type ApprovalState } from '../../src/workflows/engine/approvals.js';
import { parseDecision } from '../../src/workflows/engine/signals.js';

const waiting = (overrides: Partial<WaitingFor> = {}): WaitingFor => ({
  checkpoint: 'delete-old',
  waitId: 'delete-old#1',
  prompt: 'delete?',
  since: '2026-01-01T00:00:00.000Z',
  timeoutAt: '2026-01-02T00:00:00.000Z',
  approvers: ['alice', 'bob'],
  allowSelfApproval: false,
  ...overrides,
});

const state = (overrides: Partial<ApprovalState> = {}): ApprovalState => ({
  env: 'production',
  startedBy: 'alice',
  runId: 'run-1',
  waitingFor: waiting(),
  pending: null,
  decisions: [],
  ...overrides,
});

const approve = (by: string, checkpoint = 'delete-old', binding: { waitId?: string; runId?: string } = {}): DecideArgs => ({
  decision: 'approved',
  by,
  checkpoint,
  ...binding,
});
const reject = (by: string, reason = 'no'): DecideArgs => ({ decision: 'rejected', by, reason, checkpoint: 'delete-old' });

describe('approval rule', () => {
  it('accepts an approver other than the requester', () => {
    assert.equal(refusalReason(state(), approve('bob')), null);
    assert.equal(refusalReason(state(), approve('bob', 'delete-old')), null);
  });

  it('refuses someone not on the approver list, naming the list', () => {
    assert.equal(refusalReason(state(), approve('mallory')), "'mallory' is not an approver in production (approvers: alice, bob)");
    assert.match(refusalReason(state(), reject('mallory'))!, /not an approver/);
  });

  it('refuses self-approval where the environment forbids it, allows it where allowed', () => {
    assert.equal(refusalReason(state(), approve('alice')), "'alice' started this run and production requires approval by someone else");
    assert.equal(refusalReason(state({ waitingFor: waiting({ allowSelfApproval: true }) }), approve('alice')), null);
  });

  it('lets the requester reject their own run', () => {
    assert.equal(refusalReason(state(), reject('alice')), null);
  });

  it('lets anyone decide where approvers is *', () => {
    assert.equal(refusalReason(state({ waitingFor: waiting({ approvers: ['*'] }) }), approve('zed')), null);
  });

  it('refuses when nothing waits, saying what was decided before', () => {
    assert.equal(refusalReason(state({ waitingFor: null }), approve('bob')), 'the run is not waiting at a checkpoint');
    const decided = { checkpoint: 'delete-old', decision: 'approved' as const, by: 'bob', at: '2026-01-01T01:00:00.000Z' };
    assert.equal(
      refusalReason(state({ waitingFor: null, decisions: [decided] }), approve('bob', 'delete-old')),
      "checkpoint 'delete-old' was already approved by bob at 2026-01-01T01:00:00.000Z",
    );
    assert.match(refusalReason(state({ pending: decided }), approve('bob'))!, /already approved by bob/);
  });

  it('refuses a decision meant for another checkpoint', () => {
    assert.equal(refusalReason(state(), approve('bob', 'qa')), "the run waits at checkpoint 'delete-old', not 'qa'");
  });

  it('needs an identity, and a reason to reject', () => {
    assert.match(refusalReason(state(), approve('  '))!, /identity/);
    assert.equal(refusalReason(state(), reject('bob', ' ')), 'a rejection needs a reason');
  });

  it('needs the checkpoint named, except for runs started before that rule', () => {
    const unnamed: DecideArgs = { decision: 'approved', by: 'bob' };
    assert.equal(refusalReason(state(), unnamed), 'a decision must name the checkpoint it decides (checkpoint)');
    assert.equal(refusalReason(state({ legacy: true }), unnamed), null);
  });

  it('binds a decision to one wait of one run', () => {
    assert.equal(refusalReason(state(), approve('bob', 'delete-old', { waitId: 'delete-old#1', runId: 'run-1' })), null);
    assert.equal(
      refusalReason(state(), approve('bob', 'delete-old', { waitId: 'cutover#1' })),
      'the decision is for wait cutover#1, but the run now waits at delete-old#1',
    );
    assert.equal(
      refusalReason(state(), approve('bob', 'delete-old', { runId: 'run-0' })),
      'the decision is for run run-0, but this is run run-1',
    );
  });

  it('compares identities trimmed and case-folded', () => {
    assert.equal(refusalReason(state(), approve(' Bob ')), null);
    assert.equal(refusalReason(state(), approve('ALICE')), "'alice' started this run and production requires approval by someone else");
    assert.equal(
      refusalReason(state({ startedBy: 'Alice' }), approve('alice')),
      "'alice' started this run and production requires approval by someone else",
    );
  });

  it('accepts a request ID once', () => {
    const decided = { checkpoint: 'cutover', decision: 'approved' as const, by: 'bob', at: '2026-01-01T01:00:00.000Z', requestId: 'r-1' };
    assert.match(
      refusalReason(state({ decisions: [decided] }), { ...approve('bob'), requestId: 'r-1' })!,
      /request r-1 was already recorded/,
    );
  });
});

describe('decision signal payloads', () => {
  it('accepts well-formed payloads and keeps only known fields', () => {
    const parsed = parseDecision(
      { checkpoint: 'qa', by: 'bob', comment: 'ok', waitId: 'qa#2', runId: 'r', requestId: 'q', extra: { a: 1 } },
      'approved',
    );
    assert.deepEqual(parsed, {
      ok: true,
      args: { decision: 'approved', by: 'bob', checkpoint: 'qa', waitId: 'qa#2', runId: 'r', requestId: 'q', comment: 'ok' },
    });
  });

  it('refuses wrong types and oversized fields, naming them, and never throws', () => {
    const typed = parseDecision({ by: 1, checkpoint: 'qa' }, 'approved');
    assert.equal(typed.ok, false);
    assert.match(!typed.ok ? typed.reason : '', /malformed approve signal: by must be a string, not number/);
    const huge = parseDecision({ by: 'bob', checkpoint: 'qa', reason: 'x'.repeat(3000) }, 'rejected');
    assert.match(!huge.ok ? huge.reason : '', /reason is 3000 characters, at most 2048 are accepted/);
    const longBy = parseDecision({ by: 'm'.repeat(500) }, 'approved');
    assert.equal(!longBy.ok && longBy.by.length < 100, true, 'the refusal keeps a shortened identity');
    for (const junk of [null, 'approve', 42, [1, 2], undefined]) assert.equal(parseDecision(junk, 'approved').ok, false);
  });
});
