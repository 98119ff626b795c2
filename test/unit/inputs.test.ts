/** Turning env defaults, --input and --set into validated runbook inputs, before anything starts. */
import assert from 'node:assert/strict';
import { buildStartRequest } from '../../src/catalog/inputs.js';
import { environment, parseConfig } from '../../src/config.js';
import { InputError } from '../../src/catalog/errors.js';
import { plugin } from '../fixtures/plugin.js';

const config = parseConfig(`
environments:
  sandbox:
    aws: { region: us-east-1, endpoint: http://127.0.0.1:5000 }
    approvals: { approvers: ['*'], allowSelfApproval: true, timeouts: { delete-old: 10m } }
    runbooks:
      ledger-swap: { name: from-env, items: 5 }
`);
const ledgerSwap = plugin.runbooks[0]!;
const sandbox = environment(config, 'sandbox');
const run = { startedBy: 'alice', dryRun: false };

describe('start inputs', () => {
  it('starts from the environment defaults, then the input file, then --set', () => {
    const fromEnv = buildStartRequest(ledgerSwap, sandbox, {}, run);
    assert.equal(fromEnv.workflowId, 'ledger-swap:sandbox:from-env');
    // The operator's inputs travel as given (after the environment's defaults); the worker validates them again.
    assert.deepEqual(fromEnv.input.params, { name: 'from-env', items: 5 });
    assert.deepEqual(Object.keys(fromEnv.input).sort(), ['dryRun', 'env', 'params', 'requestId', 'runbook', 'startedBy']);

    const overridden = buildStartRequest(ledgerSwap, sandbox, { file: { items: 7 }, sets: ['name=other', 'slowMs=10'] }, run);
    assert.equal(overridden.workflowId, 'ledger-swap:sandbox:other');
    assert.deepEqual(overridden.input.params, { name: 'other', items: 7, slowMs: 10 });
    assert.equal(overridden.target, 'other');
    assert.equal(overridden.input.startedBy, 'alice');
  });

  it('reads --set values as JSON when they are, as text otherwise, with dotted keys', () => {
    const request = buildStartRequest(ledgerSwap, sandbox, { sets: ['failAt=copy', 'items=2'] }, run);
    assert.deepEqual(request.input.params, { name: 'from-env', items: 2, failAt: 'copy' });
  });

  it('refuses invalid input with every field and rule named', () => {
    assert.throws(
      () => buildStartRequest(ledgerSwap, sandbox, { sets: ['items=-1', 'failAt=never', 'name=Not OK'] }, run),
      (err: Error) => {
        assert.ok(err instanceof InputError, 'the CLI reports an InputError with exit 2');
        assert.match(err.message, /items: Number must be greater than 0/);
        assert.match(err.message, /failAt: Invalid enum value\. Expected 'stage' \| 'copy' \| 'delete-source', received 'never'/);
        assert.match(err.message, /name: lowercase letters, digits and dashes/);
        return true;
      },
    );
    assert.throws(() => buildStartRequest(ledgerSwap, sandbox, { sets: ['items'] }, run), /--set items: expected key=value/);
  });

  it('marks a dry run in the UI summary', () => {
    assert.match(buildStartRequest(ledgerSwap, sandbox, {}, { ...run, dryRun: true }).summary, /^\[dry run\] swap ledger from-env/);
  });
});
