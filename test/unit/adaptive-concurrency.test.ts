import assert from 'node:assert/strict';
import { AdaptiveConcurrency } from '../../src/activities/adaptive-concurrency.js';

class Throttled extends Error {}
const attempts = (answer: { attempts: number }) => answer.attempts;
const isThrottling = (err: unknown) => err instanceof Throttled;

describe('adaptive concurrency', () => {
  it('never runs more requests at once than the limit, which starts at the ceiling', async () => {
    const limit = new AdaptiveConcurrency(8);
    let running = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 100 }, () =>
        limit.run(
          async () => {
            most = Math.max(most, ++running);
            await new Promise((resolve) => setImmediate(resolve));
            running--;
            return { attempts: 1 };
          },
          attempts,
          isThrottling,
        ),
      ),
    );
    assert.equal(most, 8);
    assert.equal(limit.current, 8);
  });

  it('halves once per round trip on throttling, then grows back one at a time to the ceiling and no further', async () => {
    const limit = new AdaptiveConcurrency(16);
    // A burst of throttled answers at once counts as one signal: halved once, not sixteen times.
    await Promise.all(
      Array.from({ length: 16 }, () => limit.run(() => Promise.reject(new Throttled()), attempts, isThrottling).catch(() => {})),
    );
    assert.equal(limit.current, 8);
    assert.deepEqual({ ...limit.snapshot(), current: undefined }, { current: undefined, lowest: 8, throttled: 16, decreases: 1 });
    // A success the SDK only got by retrying is throttling too.
    await new Promise((resolve) => setTimeout(resolve, 60));
    await limit.run(() => Promise.resolve({ attempts: 3 }), attempts, isThrottling);
    assert.equal(limit.current, 4);
    assert.equal(limit.snapshot().throttled, 18);
    const seen = new Set<number>();
    for (let i = 0; i < 400; i++) {
      await limit.run(() => Promise.resolve({ attempts: 1 }), attempts, isThrottling);
      seen.add(limit.current);
    }
    assert.deepEqual(
      [...seen].sort((a, b) => a - b),
      [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
    );
    assert.equal(limit.current, 16);
  });

  it('does not grow while latency is far above its best (the server is saturated)', async () => {
    const limit = new AdaptiveConcurrency(8);
    await limit.run(() => Promise.reject(new Throttled()), attempts, isThrottling).catch(() => {});
    assert.equal(limit.current, 4);
    const answerAfter = (ms: number) =>
      limit.run(
        () => new Promise<{ attempts: number }>((resolve) => setTimeout(() => resolve({ attempts: 1 }), ms)),
        attempts,
        isThrottling,
      );
    const answerAtOnce = () => limit.run(() => Promise.resolve({ attempts: 1 }), attempts, isThrottling);
    await answerAtOnce(); // the best latency: well under a millisecond
    for (let i = 0; i < 20; i++) await answerAfter(100);
    assert.equal(limit.current, 4, 'latency far above its best: the limit holds');
  });

  it('does not count failures other than throttling', async () => {
    const limit = new AdaptiveConcurrency(4);
    await limit.run(() => Promise.reject(new Error('NoSuchKey')), attempts, isThrottling).catch(() => {});
    assert.equal(limit.current, 4);
    assert.equal(limit.snapshot().throttled, 0);
  });
});
