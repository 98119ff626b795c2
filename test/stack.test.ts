import { CreateBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { Connection } from '@temporalio/client';
import { execa } from 'execa';
import pg from 'pg';
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startStack, type Stack } from '../src/stack/index.js';
import { waitFor } from '../src/stack/ports.js';
import { isAlive } from '../src/stack/proc.js';

const STACK_CHILD = fileURLToPath(new URL('./fixtures/stack-child.js', import.meta.url));

describe('local stack', function () {
  this.timeout(180_000);

  describe('while running', () => {
    let dataDir: string;
    let stack: Stack;

    before(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'runbook-stack-'));
      stack = await startStack({ dataDir, log: () => {} });
    });

    after(async () => {
      await stack?.stop();
      await rm(dataDir, { recursive: true, force: true });
    });

    it('serves Temporal with the runbook search attributes registered', async () => {
      const connection = await Connection.connect({ address: stack.temporalAddress });
      try {
        await connection.healthService.check({});
        const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
        assert.ok(customAttributes && 'RunbookPhase' in customAttributes, 'RunbookPhase is not registered');
      } finally {
        await connection.close();
      }
    });

    it('serves the Temporal UI', async () => {
      const response = await fetch(stack.uiUrl);
      assert.equal(response.status, 200);
    });

    it('serves S3 from moto', async () => {
      const s3 = new S3Client({
        endpoint: stack.awsEndpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      });
      await s3.send(new CreateBucketCommand({ Bucket: 'stack-test' }));
      const { Buckets } = await s3.send(new ListBucketsCommand({}));
      assert.deepEqual(
        Buckets?.map((bucket) => bucket.Name),
        ['stack-test'],
      );
    });

    it('serves PostgreSQL, with client tools next to it', async () => {
      const client = new pg.Client({ connectionString: stack.postgresUrl });
      await client.connect();
      try {
        const { rows } = await client.query<{ one: number }>('SELECT 1 AS one');
        assert.equal(rows[0]?.one, 1);
      } finally {
        await client.end();
      }
      const { stdout } = await execa(join(stack.pgBinDir, 'pg_dump'), ['--version']);
      assert.match(stdout, /pg_dump \(PostgreSQL\) \d+/);
    });

    // Last: it stops the stack.
    it('leaves no process behind once stopped', async () => {
      const pids = stack.pids();
      assert.equal(pids.length, 6);
      assert.deepEqual(
        pids.filter((pid) => !isAlive(pid)),
        [],
        'all started processes run',
      );
      await stack.stop();
      assert.deepEqual(pids.filter(isAlive), [], 'processes still running after stop()');
      await stack.stop(); // idempotent
    });
  });

  describe('when the process that started it is SIGKILLed', () => {
    let dataDir: string;

    before(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'runbook-stack-child-'));
    });

    after(async () => {
      await rm(dataDir, { recursive: true, force: true });
    });

    it('its servers go away too', async () => {
      const child = spawn(process.execPath, [STACK_CHILD, dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const pids = await firstLineAsPids(child.stdout, () => stderr);
      assert.equal(pids.length, 6);
      assert.deepEqual(
        pids.filter((pid) => !isAlive(pid)),
        [],
        'all started processes run',
      );

      child.kill('SIGKILL');
      await waitFor(async () => pids.every((pid) => !isAlive(pid)), {
        what: `processes ${pids.join(', ')} to exit after their parent was SIGKILLed`,
        timeoutMs: 30_000,
      });
    });
  });
});

async function firstLineAsPids(stdout: NodeJS.ReadableStream, stderr: () => string): Promise<number[]> {
  for await (const line of createInterface({ input: stdout })) {
    return (JSON.parse(line) as { pids: number[] }).pids;
  }
  throw new Error(`stack-child exited without reporting its PIDs:\n${stderr()}`);
}
