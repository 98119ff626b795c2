/** Reading moto's recording, whose entries concurrent server threads can write onto one line. */
import assert from 'node:assert/strict';
import { countByOperation, recordedRequests } from '../../src/stack/moto-recorder.js';

const entry = (method: string, url: string, body = '') =>
  JSON.stringify({ headers: { 'Content-Type': 'x' }, method, url, body, body_encoded: false });

describe('moto recording', () => {
  it('reads one entry per line', () => {
    const text = [entry('GET', 'http://m/a?list-type=2'), entry('PUT', 'http://m/a/k')].join('\n') + '\n';
    assert.deepEqual(
      recordedRequests(text).map((r) => [r.method, r.url]),
      [
        ['GET', 'http://m/a?list-type=2'],
        ['PUT', 'http://m/a/k'],
      ],
    );
  });

  it('reads two entries written back to back on one line, with braces and quotes inside their strings', () => {
    const tricky = entry('PUT', 'http://m/a/k%7B', '{"not": "an entry", "quote": "\\"}"}');
    const text = `${tricky}${entry('GET', 'http://m/b/x')}\n\n${entry('HEAD', 'http://m/a/y')}\n`;
    assert.deepEqual(
      recordedRequests(text).map((r) => r.method),
      ['PUT', 'GET', 'HEAD'],
    );
    assert.deepEqual(countByOperation(recordedRequests(text), 'a'), { PutObject: 1, HeadObject: 1 });
  });

  it('leaves out an entry still being written when the recording was read', () => {
    const text = `${entry('GET', 'http://m/a/k')}\n${entry('PUT', 'http://m/a/j').slice(0, 20)}`;
    assert.deepEqual(
      recordedRequests(text).map((r) => r.url),
      ['http://m/a/k'],
    );
  });
});
