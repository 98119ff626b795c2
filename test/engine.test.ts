/**
 * The engine, end to end: the real CLI against a real Temporal dev server and a
 * real worker process, on the ledger fixture runbook.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import type { RunStatus } from '../src/messages.js';
import { testStack, webhook } from './setup.js';
import { runbook, runbookJson } from './helpers/cli.js';
import { queryStatus, temporalClient, waitForStatus, waitUntil } from './helpers/wait.js';
import { worker } from './helpers/worker.js';

let counter = 0;
/** A fresh ledger name per test, so runs never share a target. */
const freshName = (label: string) => `${label}-${process.pid}-${++counter}`;
const idFor = (name: string, env = 'sandbox') => `ledger-swap:${env}:${name}`;

function ledgerEvents(name: string): string[] {
  const file = join(testStack().ledgerDir, name, 'events.log');
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
}
const applied = (name: string) => ledgerEvents(name).filter((e) => e.startsWith('applied '));
const effectExists = (name: string, step: string) => existsSync(join(testStack().ledgerDir, name, `${step}.done`));

async function startToCheckpoint(name: string, env = 'sandbox', as = 'tester'): Promise<string> {
  const result = await runbook(['start', 'ledger-swap', '--env', env, '--set', `name=${name}`, '--wait'], { as });
  assert.equal(result.exitCode, 0, result.stderr);
  assert.match(result.stdout, /Waiting at checkpoint 'delete-old'/);
  return idFor(name, env);
}

describe('engine, through the CLI', () => {
  it('runs to the checkpoint, and an approval from the CLI completes it with each effect once', async () => {
    const name = freshName('approve');
    const id = await startToCheckpoint(name);
    assert.equal(effectExists(name, 'delete-source'), false, 'nothing destructive before approval');

    const approve = await runbook(['approve', id, '--checkpoint', 'delete-old', '--comment', 'copy looks right'], { as: 'carol' });
    assert.equal(approve.exitCode, 0, approve.stderr);

    const watched = await runbook(['watch', id]);
    assert.equal(watched.exitCode, 0, watched.stdout + watched.stderr);
    const { json: status } = await runbookJson<RunStatus>(['status', id]);
    assert.equal(status.phase, 'succeeded');
    assert.deepEqual(
      status.decisions.map((d) => [d.checkpoint, d.decision, d.by, d.comment]),
      [['delete-old', 'approved', 'carol', 'copy looks right']],
    );
    assert.deepEqual(applied(name), ['applied stage', 'applied copy', 'applied delete-source']);
  });

  it('status --json has every field of the contract', async () => {
    const name = freshName('contract');
    const id = await startToCheckpoint(name);
    const { exitCode, json } = await runbookJson<RunStatus>(['status', id]);
    assert.equal(exitCode, 0);
    for (const field of [
      'workflowId',
      'runbook',
      'env',
      'target',
      'phase',
      'dryRun',
      'startedBy',
      'currentStep',
      'steps',
      'waitingFor',
      'decisions',
      'refusals',
      'refusalsDropped',
      'policy',
      'envHash',
      'cancelledBy',
      'error',
      'errorType',
      'result',
    ]) {
      assert.ok(field in json, `status lacks ${field}`);
    }
    assert.equal(json.workflowId, id);
    assert.equal(json.runbook, 'ledger-swap');
    assert.equal(json.env, 'sandbox');
    assert.equal(json.phase, 'waiting');
    assert.equal(json.currentStep, 'delete-old');
    assert.equal(json.waitingFor?.checkpoint, 'delete-old');
    assert.deepEqual(json.waitingFor?.approvers, ['*']);
    assert.equal(json.waitingFor?.waitId, 'delete-old#1');
    const done = json.steps.filter((s) => s.status === 'done');
    assert.deepEqual(
      done.map((s) => s.name),
      ['resolve', 'preflight', 'stage', 'copy'],
    );
    for (const step of done) assert.ok(step.startedAt && step.endedAt && step.startedAt <= step.endedAt, `${step.name} has timings`);
    await runbook(['reject', id, '--checkpoint', 'delete-old', '--reason', 'test over']);
  });

  it('a rejection runs compensation and ends rolled-back', async () => {
    const name = freshName('reject');
    const id = await startToCheckpoint(name);
    const reject = await runbook(['reject', id, '--checkpoint', 'delete-old', '--reason', 'copy incomplete'], { as: 'dave' });
    assert.equal(reject.exitCode, 0, reject.stderr);

    const watched = await runbook(['watch', id]);
    assert.equal(watched.exitCode, 1, 'a rolled-back run exits 1');
    const status = await waitForStatus(id, (s) => s.phase === 'rolled-back');
    assert.deepEqual(
      status.steps.map((s) => [s.name, s.status]),
      [
        ['resolve', 'done'],
        ['preflight', 'done'],
        ['stage', 'compensated'],
        ['copy', 'compensated'],
        ['delete-old', 'failed'],
        ['delete-source', 'skipped'],
      ],
    );
    assert.match(status.error ?? '', /rejected by dave: copy incomplete/);
    assert.deepEqual(
      ledgerEvents(name).filter((e) => !e.startsWith('attempt')),
      ['applied stage', 'applied copy', 'undone copy', 'undone stage'],
    );
  });

  it('a failed step after changes undoes them and ends rolled-back', async () => {
    const name = freshName('fail');
    const result = await runbook(['start', 'ledger-swap', '--env', 'sandbox', '--set', `name=${name}`, '--set', 'failAt=copy', '--wait']);
    assert.equal(result.exitCode, 1);
    const status = await queryStatus(idFor(name));
    assert.equal(status.phase, 'rolled-back');
    assert.match(status.error ?? '', /copy failed on purpose/);
    assert.equal(effectExists(name, 'stage'), false);
  });

  it('refuses approvers not on the list and self-approval where forbidden, with reasons', async () => {
    const name = freshName('guarded');
    const id = await startToCheckpoint(name, 'guarded', 'alice');

    const blind = await runbook(['approve', id], { as: 'bob' });
    assert.equal(blind.exitCode, 2, 'without a terminal, the checkpoint must be named');
    assert.match(blind.stderr, /name the checkpoint you decide with --checkpoint \(the run waits at 'delete-old'\)/);

    const stranger = await runbook(['approve', id, '--checkpoint', 'delete-old'], { as: 'mallory' });
    assert.equal(stranger.exitCode, 2);
    assert.match(stranger.stderr, /'mallory' is not an approver in guarded \(approvers: alice, bob\)/);

    const self = await runbook(['approve', id, '--checkpoint', 'delete-old'], { as: 'alice' });
    assert.equal(self.exitCode, 2);
    assert.match(self.stderr, /'alice' started this run and guarded requires approval by someone else/);

    const wrongCheckpoint = await runbook(['approve', id, '--checkpoint', 'qa'], { as: 'bob' });
    assert.equal(wrongCheckpoint.exitCode, 2);
    assert.match(wrongCheckpoint.stderr, /waits at checkpoint 'delete-old', not 'qa'/);

    assert.equal((await queryStatus(id)).phase, 'waiting', 'refused decisions change nothing');
    const other = await runbook(['approve', id, '--checkpoint', 'delete-old'], { as: 'bob' });
    assert.equal(other.exitCode, 0, other.stderr);
    const again = await runbook(['approve', id, '--checkpoint', 'delete-old'], { as: 'bob' });
    assert.equal(again.exitCode, 2);
    assert.match(again.stderr, /already approved by bob/);
    await waitForStatus(id, (s) => s.phase === 'succeeded');
  });

  it('a checkpoint that times out rejects without the destructive step', async () => {
    const name = freshName('timeout');
    const result = await runbook(['start', 'ledger-swap', '--env', 'hasty', '--set', `name=${name}`]);
    assert.equal(result.exitCode, 0, result.stderr);
    const status = await waitForStatus(idFor(name, 'hasty'), (s) => s.phase === 'rolled-back', 30_000);
    assert.deepEqual(
      status.decisions.map((d) => [d.decision, d.by]),
      [['rejected', 'timeout']],
    );
    assert.equal(effectExists(name, 'delete-source'), false);
    assert.equal(applied(name).includes('applied delete-source'), false);
  });

  it('tells a Slack-style webhook about the whole run, reminds before a timeout, and shrugs off a dead receiver', async function () {
    this.timeout(120_000);
    const name = freshName('chatty');
    const id = idFor(name, 'chatty');
    const started = await runbook(['start', 'ledger-swap', '--env', 'chatty', '--set', `name=${name}`]);
    assert.equal(started.exitCode, 0, started.stderr);
    const status = await waitForStatus(id, (s) => s.phase === 'rolled-back', 60_000);
    const texts = () =>
      webhook()
        .received.filter((n) => Array.isArray(n.blocks) && String(n.text).includes(id))
        .map((n) => String(n.text));
    await waitUntil(() => texts().some((t) => / rolled-back: /.test(t)), { timeoutMs: 30_000, what: 'the rolled-back notice' });
    const events = texts().map((t) =>
      /^Reminder/.test(t)
        ? 'reminder'
        : / started by /.test(t)
          ? 'started'
          : / waits at /.test(t)
            ? 'waiting'
            : /'delete-old' of .* rejected by timeout/.test(t)
              ? 'decided'
              : / rolled-back: /.test(t)
                ? 'rolled-back'
                : t,
    );
    assert.deepEqual(events, ['started', 'waiting', 'reminder', 'reminder', 'decided', 'rolled-back']);
    const waiting = webhook().received.find(
      (n) => Array.isArray(n.blocks) && / waits at /.test(String(n.text)) && String(n.text).includes(id),
    )!;
    assert.match(String(waiting.text), new RegExp(`runbook approve ${id} --checkpoint delete-old`));
    assert.equal((waiting.blocks as { type: string }[])[0]!.type, 'section');
    assert.deepEqual(
      status.notifications.failed.map((f) => [f.event, f.webhook]),
      [['started', 'unreachable']],
      'the dead receiver is reported, and the run went on',
    );
    assert.match(status.notifications.failed[0]!.error, /fetch failed|ECONNREFUSED/);
    assert.ok(status.notifications.sent >= 5);
    const history = historyToJSON(await (await temporalClient()).workflow.getHandle(id).fetchHistory());
    const decoded = [...history.matchAll(/"data":\s*"([A-Za-z0-9+/=]+)"/g)]
      .map((m) => Buffer.from(m[1]!, 'base64').toString('utf8'))
      .join('\n');
    assert.match(decoded, /"webhook":"chat"/, 'the search covers the decoded payloads');
    assert.ok(!decoded.includes(webhook().url), "the webhook's URL never enters the history");
  });

  it('tells the environment webhook when a checkpoint starts waiting', async () => {
    const name = freshName('notify');
    const id = await startToCheckpoint(name, 'notified', 'alice');
    await waitUntil(() => webhook().received.some((n) => n.workflowId === id), { timeoutMs: 30_000, what: 'the webhook to be called' });
    const notice = webhook().received.find((n) => n.workflowId === id)!;
    assert.equal(notice.checkpoint, 'delete-old');
    assert.equal(notice.env, 'notified');
    assert.deepEqual(notice.approvers, ['alice', 'bob']);
    assert.match(String(notice.text), new RegExp(`runbook approve ${id} --checkpoint delete-old`));
    await runbook(['reject', id, '--checkpoint', 'delete-old', '--reason', 'done testing'], { as: 'alice' });
  });

  it('approves by signal from the Temporal CLI too', async () => {
    const name = freshName('signal');
    const id = await startToCheckpoint(name);
    const { temporalCli, temporalAddress, namespace } = testStack();
    await execa(temporalCli, [
      'workflow',
      'signal',
      '--address',
      temporalAddress,
      '--namespace',
      namespace,
      '--workflow-id',
      id,
      '--name',
      'approve',
      '--input',
      JSON.stringify({ by: 'erin', checkpoint: 'delete-old', comment: 'from the UI' }),
    ]);
    const status = await waitForStatus(id, (s) => s.phase === 'succeeded');
    assert.deepEqual(
      status.decisions.map((d) => [d.decision, d.by]),
      [['approved', 'erin']],
    );
  });

  it('records a refused signal instead of acting on it', async () => {
    const name = freshName('badsignal');
    const id = await startToCheckpoint(name, 'guarded', 'alice');
    const { temporalCli, temporalAddress, namespace } = testStack();
    await execa(temporalCli, [
      'workflow',
      'signal',
      '--address',
      temporalAddress,
      '--namespace',
      namespace,
      '--workflow-id',
      id,
      '--name',
      'approve',
      '--input',
      JSON.stringify({ by: 'alice', checkpoint: 'delete-old' }),
    ]);
    const status = await waitForStatus(id, (s) => s.refusals.length > 0);
    assert.equal(status.phase, 'waiting');
    assert.match(status.refusals[0]!.reason, /requires approval by someone else/);
    await runbook(['reject', id, '--checkpoint', 'delete-old', '--reason', 'done testing'], { as: 'alice' });
  });

  it('a second start on a held target exits 3 and names the run holding it', async () => {
    const name = freshName('conflict');
    const id = await startToCheckpoint(name);
    const second = await runbook(['start', 'ledger-swap', '--env', 'sandbox', '--set', `name=${name}`], { as: 'zoe' });
    assert.equal(second.exitCode, 3);
    assert.match(
      second.stderr,
      new RegExp(`${id} is held by a run in progress \\(run [0-9a-f-]+\\), started by tester, waiting at checkpoint 'delete-old'`),
    );
    await runbook(['reject', id, '--checkpoint', 'delete-old', '--reason', 'done testing']);
  });

  it('invalid input exits 2, names the field and starts nothing', async () => {
    const before = await runbookJson<unknown[]>(['ls', '--runbook', 'ledger-swap', '--limit', '1000']);
    const result = await runbook(['start', 'ledger-swap', '--env', 'sandbox', '--set', 'name=Bad Name', '--set', 'items=0']);
    assert.equal(result.exitCode, 2);
    assert.match(result.stderr, /name: lowercase letters, digits and dashes/);
    assert.match(result.stderr, /items: Number must be greater than 0/);
    const unknownEnv = await runbook(['start', 'ledger-swap', '--env', 'nowhere', '--set', 'name=x']);
    assert.equal(unknownEnv.exitCode, 2);
    assert.match(unknownEnv.stderr, /unknown environment 'nowhere'/);
    const after = await runbookJson<unknown[]>(['ls', '--runbook', 'ledger-swap', '--limit', '1000']);
    assert.equal(after.json.length, before.json.length);
  });

  it('a preflight refusal exits 2 and changes nothing', async () => {
    const name = freshName('missing');
    const result = await runbook(['start', 'ledger-swap', '--env', 'sandbox', '--set', `name=${name}`]);
    assert.equal(result.exitCode, 2);
    assert.match(result.stdout + result.stderr, /does not exist/);
    assert.deepEqual(applied(name), []);
  });

  it('a dry run leaves mutating steps undone, each with a "would" detail', async () => {
    const name = freshName('dry');
    const result = await runbook(['start', 'ledger-swap', '--env', 'sandbox', '--set', `name=${name}`, '--dry-run', '--wait']);
    assert.equal(result.exitCode, 0, result.stderr);
    const { json: status } = await runbookJson<RunStatus>(['status', idFor(name)]);
    assert.equal(status.dryRun, true);
    assert.equal(status.phase, 'succeeded');
    const byName = Object.fromEntries(status.steps.map((s) => [s.name, s]));
    assert.equal(byName.preflight?.status, 'done');
    for (const step of ['stage', 'copy', 'delete-old', 'delete-source']) {
      assert.equal(byName[step]?.status, 'skipped', step);
      assert.match(byName[step]?.detail ?? '', /^would /, step);
    }
    assert.deepEqual(ledgerEvents(name), []);
  });

  it('cancel while waiting runs compensation and ends cancelled', async () => {
    const name = freshName('cancel');
    const id = await startToCheckpoint(name);
    const result = await runbook(['cancel', id, '--wait']);
    assert.equal(result.exitCode, 0, result.stderr);
    const { json: status } = await runbookJson<RunStatus>(['status', id]);
    assert.equal(status.phase, 'cancelled');
    assert.equal(effectExists(name, 'copy'), false);
    assert.equal(effectExists(name, 'stage'), false);
  });

  it('ls lists runs newest first, filtered by env and runbook', async () => {
    const { json: rows } = await runbookJson<{ workflowId: string; env: string; runbook: string; startTime: string }[]>([
      'ls',
      '--env',
      'guarded',
    ]);
    assert.ok(rows.length >= 1);
    for (const row of rows) assert.equal(row.env, 'guarded');
    const times = rows.map((r) => r.startTime);
    assert.deepEqual(times, [...times].sort().reverse());
  });

  it('after SIGKILL of the worker mid-step, a new worker finishes the run with each effect once', async () => {
    const name = freshName('crash');
    const id = idFor(name);
    const started = await runbook(['start', 'ledger-swap', '--env', 'sandbox', '--set', `name=${name}`, '--set', 'slowMs=4000']);
    assert.equal(started.exitCode, 0, started.stderr);
    await waitUntil(() => ledgerEvents(name).includes('attempt copy'), { timeoutMs: 30_000, what: 'the copy to start' });
    await worker().kill('SIGKILL');
    assert.equal(effectExists(name, 'copy'), false, 'killed before the copy finished');
    await worker().start();

    await waitForStatus(id, (s) => s.phase === 'waiting', 60_000);
    const approve = await runbook(['approve', id, '--checkpoint', 'delete-old']);
    assert.equal(approve.exitCode, 0, approve.stderr);
    await waitForStatus(id, (s) => s.phase === 'succeeded');
    assert.deepEqual(applied(name), ['applied stage', 'applied copy', 'applied delete-source']);
    assert.ok(ledgerEvents(name).filter((e) => e === 'attempt copy').length >= 2, 'the copy was retried after the crash');
  });
});
