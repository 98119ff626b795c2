/** Live progress: reading heartbeat details and saying how far a step got, how fast, and when it ends. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { defaultPayloadConverter } from '@temporalio/common';
import type { WorkflowExecutionDescription } from '@temporalio/client';
import { formatProgress, fromDetails, progressBar, progressOf, type ActivityProgress } from '../../src/cli/progress.js';
import { formatStatus, LiveProgress } from '../../src/cli/render.js';
import type { RunStatus } from '../../src/messages.js';
import { syncHeartbeat } from '../../src/activities/logical-replication.js';

const at = (iso: string) => ({ seconds: Math.floor(Date.parse(iso) / 1000), nanos: 0 });

function described(
  pending: { type: string; details?: unknown; attempt?: number; heartbeatAt?: string }[],
): Pick<WorkflowExecutionDescription, 'raw'> {
  return {
    raw: {
      pendingActivities: pending.map((p) => ({
        activityType: { name: p.type },
        attempt: p.attempt ?? 1,
        ...(p.details === undefined ? {} : { heartbeatDetails: { payloads: [defaultPayloadConverter.toPayload(p.details)] } }),
        ...(p.heartbeatAt ? { lastHeartbeatTime: at(p.heartbeatAt) } : {}),
      })),
    },
  } as unknown as Pick<WorkflowExecutionDescription, 'raw'>;
}

const running = (overrides: Partial<RunStatus> = {}): RunStatus => ({
  workflowId: 'bucket-swap:sandbox:uploads',
  runbook: 'bucket-swap',
  env: 'sandbox',
  target: 'uploads',
  phase: 'running',
  dryRun: false,
  startedBy: 'alice',
  currentStep: 'copy-objects',
  steps: [
    { name: 'preflight', status: 'done', startedAt: '2026-01-01T00:00:00.000Z', endedAt: '2026-01-01T00:00:01.000Z' },
    { name: 'copy-objects', status: 'running', startedAt: '2026-01-01T00:00:10.000Z', detail: 'copy every object' },
  ],
  waitingFor: null,
  decisions: [],
  refusals: [],
  refusalsDropped: 0,
  policy: null,
  envHash: null,
  cancelledBy: null,
  notifications: { sent: 0, failed: [] },
  error: null,
  errorType: null,
  result: null,
  ...overrides,
});

describe('live progress', () => {
  it('reads the progress convention and the heartbeats that predate it', () => {
    assert.deepEqual(fromDetails({ token: 't', progress: { done: 3, total: 4, unit: 'healthy tasks' } }), {
      done: 3,
      total: 4,
      unit: 'healthy tasks',
    });
    assert.deepEqual(fromDetails({ token: 'x', finished: false, pages: 2, objects: 2000, bytes: 4096, copied: 2000 }), {
      done: 2000,
      unit: 'objects',
      bytes: 4096,
    });
    assert.deepEqual(fromDetails({ objects: 10, bytes: 1, multipart: 0, mismatches: 2, examples: [] }), {
      done: 10,
      unit: 'objects',
      bytes: 1,
      note: '2 mismatched',
    });
    assert.deepEqual(fromDetails({ newTaskArns: ['a', 'b'], failures: [{ arn: 'c', why: 'x' }], polls: 3, delayMs: 1000 }), {
      done: 2,
      unit: 'new tasks running',
      level: true,
      note: '1 failed',
    });
    assert.deepEqual(fromDetails({ done: [{}, {}], problems: [], current: { table: 'orders', rows: 5000 } }), {
      done: 2,
      unit: 'tables verified',
      note: 'at orders (5,000 rows)',
    });
    assert.deepEqual(fromDetails(7), { done: 7, unit: 'done' });
    for (const nothing of [undefined, null, 'key', { token: 'only' }]) assert.equal(fromDetails(nothing), undefined);
  });

  it('takes progress from the pending activities of a description, skipping those without', () => {
    const progress = progressOf(
      described([
        { type: 'copyObjects', details: { objects: 5, bytes: 10 }, attempt: 2, heartbeatAt: '2026-01-01T00:00:20.000Z' },
        { type: 'inspectService' },
      ]),
    );
    assert.deepEqual(progress, [
      { activity: 'copyObjects', attempt: 2, at: '2026-01-01T00:00:20.000Z', done: 5, unit: 'objects', bytes: 10 },
    ]);
    assert.deepEqual(progressOf(described([])), []);
  });

  it('says done of total, bytes, rate since the step started and an ETA', () => {
    const p: ActivityProgress = {
      activity: 'copyObjects',
      attempt: 1,
      at: '2026-01-01T00:00:20.000Z',
      done: 500,
      total: 2000,
      unit: 'objects',
      bytes: 10 * 2 ** 20,
    };
    assert.equal(
      formatProgress(p, '2026-01-01T00:00:10.000Z'),
      '500 / 2,000 objects (25%) · 10.0 MiB · 50 objects/s, 1.00 MiB/s · ETA 30s',
    );
    assert.equal(formatProgress({ ...p, total: undefined, bytes: undefined }, '2026-01-01T00:00:10.000Z'), '500 objects · 50 objects/s');
    assert.equal(
      formatProgress({ ...p, done: 1, total: 2, unit: 'healthy tasks', bytes: undefined, attempt: 3 }, '2026-01-01T00:00:00.000Z'),
      '1 / 2 healthy tasks (50%) · 0.1 healthy tasks/s · ETA 20s · attempt 3',
    );
    assert.equal(
      formatProgress(
        { ...p, done: 2, unit: 'new tasks running', level: true, total: undefined, bytes: undefined, note: '1 failed' },
        '2026-01-01T00:00:10.000Z',
      ),
      '2 new tasks running · 1 failed',
    );
  });

  it('draws a bar only when the total is known', () => {
    assert.equal(progressBar({ done: 1, total: 4, unit: 'x' }, 8), '▕██░░░░░░▏');
    assert.equal(progressBar({ done: 9, total: 4, unit: 'x' }, 4), '▕████▏');
    assert.equal(progressBar({ done: 1, unit: 'x' }), '');
  });

  it('shows the progress under the running step in `runbook status`', () => {
    const progress: ActivityProgress[] = [
      { activity: 'copyObjects', attempt: 1, at: '2026-01-01T00:00:20.000Z', done: 100, unit: 'objects', bytes: 2048 },
    ];
    const lines = formatStatus(running(), undefined, progress).split('\n');
    const step = lines.findIndex((l) => l.includes('copy-objects'));
    assert.equal(lines[step + 1], '      100 objects · 2.00 KiB · 10 objects/s, 205 bytes/s');
  });

  it('prints plain progress lines when not on a terminal, only when they change and not too often', () => {
    const written: string[] = [];
    const live = new LiveProgress({ tty: false, write: (line) => written.push(line), everyMs: 0 });
    const progress = (done: number): ActivityProgress[] => [{ activity: 'copyObjects', attempt: 1, done, unit: 'objects' }];
    live.update(running({ steps: [{ name: 'copy-objects', status: 'running' }] }), progress(1));
    live.update(running({ steps: [{ name: 'copy-objects', status: 'running' }] }), progress(1));
    live.update(running({ steps: [{ name: 'copy-objects', status: 'running' }] }), progress(2));
    live.update(running({ phase: 'waiting', currentStep: 'delete-old', steps: [{ name: 'copy-objects', status: 'done' }] }), []);
    assert.deepEqual(written, ['  … copy-objects: 1 objects', '  … copy-objects: 2 objects']);
    const throttled: string[] = [];
    const slow = new LiveProgress({ tty: false, write: (line) => throttled.push(line), everyMs: 60_000 });
    slow.update(running(), progress(1));
    slow.update(running(), progress(2));
    assert.equal(throttled.length, 1);
  });

  it('draws a live line with a bar on a terminal, and leaves step lines above it', () => {
    let drawn = '';
    const stream = Object.assign(new Writable({ write: (chunk: Buffer, _encoding, done) => void ((drawn += chunk.toString()), done()) }), {
      isTTY: true,
      columns: 120,
      cursorTo: () => true,
      moveCursor: () => true,
      clearLine: () => true,
    });
    const printed: string[] = [];
    const live = new LiveProgress({ tty: true, write: (line) => printed.push(line), stream });
    const progress: ActivityProgress[] = [{ activity: 'waitForHealthyNewTasks', attempt: 1, done: 1, total: 2, unit: 'healthy tasks' }];
    live.update(running({ currentStep: 'wait-healthy', steps: [{ name: 'wait-healthy', status: 'running' }] }), progress);
    live.print('  ✓ raise-desired done');
    live.stop();
    assert.match(drawn, /wait-healthy: ▕██████████░░░░░░░░░░▏ 1 \/ 2 healthy tasks \(50%\)/);
    assert.deepEqual(printed, ['  ✓ raise-desired done']);
  });
});

describe("online db-migration's initial sync, as watch shows it", () => {
  it('reads tables streaming of all, with the lag and the tables still copying', () => {
    const details = syncHeartbeat({ tables: 8, ready: 5, pending: ['orders (copying)'], lagBytes: 3 * 1024 * 1024, lagSeconds: 2.25 });
    const read = fromDetails(details);
    assert.deepEqual(read && { done: read.done, total: read.total, unit: read.unit, level: read.level }, {
      done: 5,
      total: 8,
      unit: 'tables streaming',
      level: true,
    });
    const line = formatProgress(
      { ...read!, activity: 'waitForSync', attempt: 1 },
      '2026-12-02T10:00:00Z',
      Date.parse('2026-12-02T10:01:00Z'),
    );
    assert.match(line, /^5 \/ 8 tables streaming \(62%\)/);
    assert.match(line, /lag 3\.00 MiB, 2\.3 s; orders \(copying\)/);
    assert.doesNotMatch(line, /ETA/, 'a level has no ETA');
  });
});
