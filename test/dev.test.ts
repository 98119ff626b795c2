/**
 * `runbook dev` as a newcomer runs it: from an empty directory, it serves the
 * Temporal UI on 8233, writes .runbook/dev.json only once its worker polls
 * (a run started that moment is picked up), and leaves nothing behind after Ctrl-C.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { execa } from 'execa';
import { countPollers } from '../src/cli/run-status.js';
import type { DevState } from '../src/cli/context.js';
import { cliPath } from './helpers/cli.js';
import { waitUntil } from './helpers/wait.js';

/** Every process whose command line or working directory mentions the folder. */
function processesUsing(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(dir)) found.push(`${pid} ${cmdline}`);
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

describe('runbook dev', () => {
  let dir: string;
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serves the UI on 8233, writes dev.json, runs a worker, and stops everything on SIGINT', async function () {
    this.timeout(5 * 60_000);
    dir = mkdtempSync(join(tmpdir(), 'runbook-dev-'));
    // `runbook dev` serves its own Temporal, with only the default namespace (a lane's namespace is on the lanes' stack).
    const { RUNBOOK_CONFIG: _config, TEMPORAL_ADDRESS: _address, TEMPORAL_NAMESPACE: _namespace, ...cleanEnv } = process.env;
    const dev = execa(process.execPath, [cliPath, 'dev'], { cwd: dir, env: cleanEnv, extendEnv: false, reject: false });
    let output = '';
    dev.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    dev.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));

    const stateFile = join(dir, '.runbook', 'dev.json');
    await waitUntil(() => existsSync(stateFile), {
      timeoutMs: 180_000,
      intervalMs: 20,
      what: () => `runbook dev to write dev.json; output so far:\n${output}`,
    });
    // A script starts a run the moment dev.json appears: the worker must already poll.
    const run = await execa(process.execPath, [cliPath, 'start', 'rolling-restart', '--env', 'sandbox', '--dry-run', '--wait'], {
      cwd: dir,
      env: cleanEnv,
      extendEnv: false,
      reject: false,
    });
    assert.doesNotMatch(run.stderr, /no worker is polling/);
    assert.equal(run.exitCode, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /run succeeded/);
    assert.match(output, /Ready\./);
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as DevState;
    assert.deepEqual(Object.keys(state).sort(), ['awsEndpoint', 'config', 'postgresUrl', 'temporalAddress', 'uiUrl']);
    assert.equal(state.uiUrl, 'http://127.0.0.1:8233');
    assert.equal((await fetch('http://127.0.0.1:8233/')).status, 200);
    assert.ok(processesUsing(dir).length > 0, 'the stack runs out of the dev folder');

    const list = await execa(process.execPath, [cliPath, 'list'], { cwd: dir, env: cleanEnv, extendEnv: false, reject: false });
    assert.equal(list.exitCode, 0, list.stderr);
    const client = new Client({ connection: await Connection.connect({ address: state.temporalAddress }) });
    try {
      assert.ok((await countPollers(client)) > 0, 'a worker polls the runbooks task queue');
    } finally {
      await client.connection.close();
    }

    dev.kill('SIGINT');
    const result = await dev;
    assert.equal(result.exitCode, 0, output);
    assert.match(output, /Stopped\./);
    assert.deepEqual(processesUsing(dir), [], 'no process started by runbook dev is left');
    assert.equal(existsSync(stateFile), false, 'dev.json goes away with the stack');
    await assert.rejects(fetch('http://127.0.0.1:8233/'), 'the UI is down');
  });
});
