/** The tests' worker: a real `runbook worker` process that tests may SIGKILL and start again. */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { testStack } from '../setup.js';
import { cliPath } from './cli.js';

let current: ResultPromise | undefined;
let started = 0;

export async function startSharedWorker(): Promise<void> {
  if (current) return;
  const stack = testStack();
  const log = createWriteStream(join(stack.dir, `worker-${++started}.log`));
  const child = execa(process.execPath, [cliPath, 'worker'], { env: stack.env, reject: false, buffer: false });
  child.stderr?.pipe(log);
  current = child;
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      log.write(chunk);
      if (seen.includes('worker polling')) resolve();
    });
    void child.then((result) =>
      reject(new Error(`worker exited before polling (code ${result.exitCode}); see ${join(stack.dir, `worker-${started}.log`)}`)),
    );
  });
}

export async function stopSharedWorker(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const child = current;
  current = undefined;
  if (!child) return;
  child.kill(signal);
  await child;
}

/** The shared worker, for tests that kill it mid-run. */
export function worker() {
  return {
    kill: (signal: NodeJS.Signals = 'SIGKILL') => stopSharedWorker(signal),
    start: () => startSharedWorker(),
    pid: () => current?.pid,
  };
}
