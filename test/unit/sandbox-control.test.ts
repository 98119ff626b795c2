import assert from 'node:assert/strict';
import type { Sandbox } from '../../src/stack/sandbox/index.js';
import { remoteSandbox, serveSandbox, snapshotOf } from '../helpers/sandbox-control.js';

/** A stand-in for the seeded sandbox: the simulator is a class instance whose calls are recorded. */
class Simulator {
  calls: unknown[] = [];
  configure(settings: unknown): void {
    this.calls.push(settings);
  }
}

function fakeSandbox() {
  const ecs = new Simulator();
  const sandbox = {
    environment: { runbooks: { 'rolling-restart': { service: 'app' } } },
    workerEnv: { A: '1' },
    ecs,
    db: {
      passwords: ['p'],
      seedAppDatabase: (options: { instance: string }) => Promise.resolve({ instance: options.instance, url: 'u' }),
      databaseUrl: () => 'unused',
    },
    regions: {
      bucket: 'b',
      putObject: () => Promise.reject(new Error('moto said no')),
    },
    stop: () => Promise.resolve(),
  };
  return { sandbox: sandbox as unknown as Sandbox, ecs };
}

describe('the sandbox served to e2e lanes', () => {
  it('snapshots the data only: no functions, no simulator', () => {
    const snapshot = snapshotOf(fakeSandbox().sandbox);
    assert.deepEqual(snapshot, {
      environment: { runbooks: { 'rolling-restart': { service: 'app' } } },
      workerEnv: { A: '1' },
      db: { passwords: ['p'] },
      regions: { bucket: 'b' },
    });
  });

  it("changes the seeding process's simulator, returns results, reports failures, and computes database URLs locally", async () => {
    const { sandbox, ecs } = fakeSandbox();
    const served = await serveSandbox(sandbox);
    try {
      const lane = remoteSandbox(snapshotOf(sandbox), 'postgres://u:p@127.0.0.1:5432/postgres', served.url);
      await lane.ecs.configure({ healthDelayMs: 40_000 });
      assert.deepEqual(ecs.calls, [{ healthDelayMs: 40_000 }]);
      assert.deepEqual(await lane.db.seedAppDatabase({ instance: 'x', writerService: 'w' }), { instance: 'x', url: 'u' });
      await assert.rejects(lane.regions.putObject('k', 'v'), /regions\.putObject failed in the seeding process: moto said no/);
      assert.equal(lane.db.databaseUrl('sandbox-appdb'), 'postgres://u:p@127.0.0.1:5432/sandbox-appdb');
      const refused = await fetch(served.url, { method: 'POST', body: JSON.stringify({ method: 'stop', args: [] }) });
      assert.equal(refused.status, 400);
    } finally {
      await served.close();
    }
  });
});
