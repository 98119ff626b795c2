/** How many tasks fit: the arithmetic behind rolling-restart's capacity refusal, and settleAll's promise. */
import assert from 'node:assert/strict';
import { taskResources, tasksThatFit } from '../../src/activities/task-capacity.js';
import { settleAll } from '../../src/settle.js';

describe('task placement arithmetic', () => {
  it('counts the tasks that fit by the scarcer of CPU and memory', () => {
    assert.equal(tasksThatFit({ cpu: 2048, memory: 4096 }, { cpu: 256, memory: 256 }), 8);
    assert.equal(tasksThatFit({ cpu: 2048, memory: 4096 }, { cpu: 256, memory: 1024 }), 4);
    assert.equal(tasksThatFit({ cpu: 100, memory: 4096 }, { cpu: 256, memory: 256 }), 0);
    assert.equal(tasksThatFit({ cpu: -5, memory: 4096 }, { cpu: 256, memory: 256 }), 0, 'an overcommitted instance fits nothing');
    assert.equal(
      tasksThatFit({ cpu: 2048, memory: 1000 }, { cpu: 0, memory: 500 }),
      2,
      'a task with no CPU reservation is bound by memory',
    );
  });

  it('reads a task size from the task level, else from the sum of its containers', () => {
    assert.deepEqual(taskResources({ cpu: '1024', memory: '2048', containerDefinitions: [{ cpu: 10, memory: 20 }] }), {
      cpu: 1024,
      memory: 2048,
    });
    assert.deepEqual(
      taskResources({
        containerDefinitions: [
          { cpu: 256, memory: 512 },
          { cpu: 128, memoryReservation: 64 },
        ],
      }),
      { cpu: 384, memory: 576 },
    );
  });
});

describe('settleAll', () => {
  it('fails only once every promise has settled, with the first failure', async () => {
    const finished: string[] = [];
    const slow = new Promise<string>((resolve) => setTimeout(() => (finished.push('slow'), resolve('slow')), 50));
    const failing = Promise.reject(new Error('copy failed'));
    await assert.rejects(settleAll([slow, failing]), /copy failed/);
    assert.deepEqual(finished, ['slow'], 'the slow one had finished before settleAll failed');
    assert.deepEqual(await settleAll([Promise.resolve(1), Promise.resolve(2)]), [1, 2]);
  });
});
