/** The approval rule, shared by the workflow's signal handlers and the CLI. */
import assert from 'node:assert/strict';
import type { DecideArgs, WaitingFor } from '../../src/messages.js';
import { refusalReason, type ApprovalState } from '../../src/workflows/engine/approvals.js';

const waiting = (overrides: Partial<WaitingFor> = {}): WaitingFor => ({
  checkpoint: 'delete-old',
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
  waitingFor: waiting(),
  pending: null,
  decisions: [],
  ...overrides,
});

const approve = (by: string, checkpoint?: string): DecideArgs => ({ decision: 'approved', by, checkpoint });
const reject = (by: string, reason = 'no'): DecideArgs => ({ decision: 'rejected', by, reason });

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
});
