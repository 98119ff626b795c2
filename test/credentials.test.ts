/**
 * Credentials go only where the worker's config binds them, and database
 * connections verify the server: tried against the real worker (CLI and raw
 * starts), a plain TCP listener posing as PostgreSQL, and the real sandbox
 * PostgreSQL with its own CA and with another.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { stringify } from 'yaml';
import { TASK_QUEUE } from '../src/messages.js';
import { readRun } from '../src/cli/run-status.js';
import { parseConfig, type RunbooksConfig } from '../src/config.js';
import { createRegionConfigActivities, type RegionRow } from '../src/activities/region-config.js';
import type { Login } from '../src/activities/pg-connect.js';
import { sandbox, testStack } from './setup.js';
import { runbook } from './helpers/cli.js';
import { makePki } from './helpers/tls-front.js';
import { temporalClient } from './helpers/wait.js';

const PASSWORD = 'probe-password-7f3a9c';

/** A plain TCP server on 127.0.0.1 that records every byte and, if told, answers a startup with a password challenge. */
async function fakePostgres(
  challenge?: 'cleartext' | 'md5',
): Promise<{ port: number; received: () => Buffer; close: () => Promise<void> }> {
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      if (!challenge) return;
      // AuthenticationCleartextPassword (R, length 8, code 3) or AuthenticationMD5Password (R, length 12, code 5, salt).
      const reply =
        challenge === 'cleartext' ? Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3]) : Buffer.from([0x52, 0, 0, 0, 12, 0, 0, 0, 5, 1, 2, 3, 4]);
      socket.write(reply);
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received: () => Buffer.concat(chunks),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A worker-side config with one unprotected environment for the activity-level checks. */
function workerConfig(env: Record<string, unknown>): RunbooksConfig {
  const aws = (sandbox().environment as { aws: unknown }).aws;
  return parseConfig(stringify({ environments: { probe: { aws, ...env } } }), join(testStack().dir, 'probe.config.yaml'));
}

const login = (host: string, port: number, credential: string, tls: boolean): Login => ({
  field: 'database',
  location: { instance: host, host: true, endpoint: { host, port }, database: 'districtbuilder', tls: tls ? 'require' : 'disable' },
  credentials: { env: 'probe', username: 'districtbuilder', credential },
});

async function failure(promise: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    return err;
  }
  return assert.fail('it succeeded');
}

describe('credentials bound to destinations, verified TLS to databases', () => {
  const pgAddress = () => {
    const url = new URL(sandbox().regions.databaseUrl);
    return { host: url.hostname, port: Number(url.port) };
  };

  it('refuses a region-data-update that would send its credential to another host, in a dry run too, and the listener hears nothing', async () => {
    const listener = await fakePostgres('cleartext');
    try {
      const regions = JSON.stringify([{ id: `CRED${process.pid}`, newDataUri: `s3://${sandbox().regions.bucket}/incoming/none` }]);
      const elsewhere = ['--set', 'database.host=localhost', '--set', `database.port=${listener.port}`, '--set', `regions=${regions}`];
      const rule = new RegExp(
        `database\\.credential: credential 'regions-db' may only be sent to 127\\.0\\.0\\.1:${pgAddress().port}, not to localhost:${listener.port}`,
      );
      for (const dry of [['--dry-run'], []]) {
        const result = await runbook(['start', 'region-data-update', '--env', 'sandbox', ...elsewhere, ...dry], { as: 'ops' });
        assert.equal(result.exitCode, 2, result.stdout + result.stderr);
        assert.match(result.stderr, rule);
      }

      // The same input started raw, past the CLI: the worker's resolve step refuses it before any step runs.
      const client = await temporalClient();
      const id = `region-data-update:sandbox:CRED${process.pid}`;
      const defaults = (sandbox().environment.runbooks as Record<string, Record<string, unknown>>)['region-data-update']!;
      const params = {
        regions: JSON.parse(regions) as unknown,
        database: { ...(defaults.database as object), host: 'localhost', port: listener.port },
      };
      await client.workflow.start('regionDataUpdate', {
        workflowId: id,
        taskQueue: TASK_QUEUE,
        args: [{ runbook: 'region-data-update', env: 'sandbox', params, dryRun: true, startedBy: 'mallory', requestId: 'cred-raw' }],
      });
      await assert.rejects(client.workflow.getHandle(id).result());
      const { status } = await readRun(client, id);
      assert.equal(status.errorType, 'InvalidInput');
      assert.match(status.error ?? '', rule);
      assert.ok(
        status.steps.filter((s) => s.name !== 'resolve').every((s) => s.status === 'skipped'),
        'preflight never ran',
      );
      assert.equal(listener.received().length, 0, 'nothing connected to the listener');
    } finally {
      await listener.close();
    }
  });

  it('checks the binding again in the activity that connects, and answers no cleartext or MD5 challenge', async () => {
    process.env.RUNBOOK_SECRET_PROBE = PASSWORD;
    for (const challenge of ['cleartext', 'md5'] as const) {
      const listener = await fakePostgres(challenge);
      try {
        const activities = createRegionConfigActivities({
          environments: workerConfig({
            databaseTls: { mode: 'require' },
            credentials: {
              probe: { ref: 'env:RUNBOOK_SECRET_PROBE', allowedHosts: [`127.0.0.1:${listener.port}`] },
              elsewhere: { ref: 'env:RUNBOOK_SECRET_PROBE', allowedHosts: ['db.example.com'] },
            },
          }),
        });
        const db = (credential: string, tls = false) => ({
          aws: { region: 'us-east-1' },
          login: login('127.0.0.1', listener.port, credential, tls),
        });

        const unbound = await failure(activities.readRegions({ db: db('elsewhere'), ids: ['PA'] }));
        assert.equal(unbound.type, 'InvalidInput');
        assert.match(
          unbound.message,
          new RegExp(
            `database\\.credential: credential 'elsewhere' may only be sent to db\\.example\\.com, not to 127\\.0\\.0\\.1:${listener.port}`,
          ),
        );
        assert.equal(listener.received().length, 0, 'an unbound credential never connects');

        const weak = await failure(activities.readRegions({ db: db('probe'), ids: ['PA'] }));
        assert.equal(weak.type, 'DatabaseAuthenticationRefused');
        assert.match(
          weak.message,
          new RegExp(
            `127\\.0\\.0\\.1:${listener.port} asked for ${challenge === 'cleartext' ? 'a cleartext password' : 'an MD5 password hash'}; the worker sends passwords only by SCRAM-SHA-256`,
          ),
        );
        const heard = listener.received();
        assert.ok(heard.length > 0, 'the startup message reached the listener');
        assert.ok(!heard.includes(Buffer.from(PASSWORD)), 'no password bytes');
        assert.ok(!heard.includes(Buffer.from([0x70, 0, 0, 0])), 'no PasswordMessage at all');
      } finally {
        await listener.close();
      }
    }
  });

  it('connects with verify-full to the sandbox PostgreSQL with its CA, and refuses a certificate another CA did not sign, naming the host', async () => {
    const { host, port } = pgAddress();
    const dir = mkdtempSync(join(tmpdir(), 'other-ca-'));
    try {
      // A CA of its own, which did not sign the sandbox server's certificate.
      const otherCa = makePki(dir).ca;
      const ref = sandbox().regions.credentialRef;
      const sandboxCa = (sandbox().environment as { databaseTls: { ca: string } }).databaseTls.ca;
      const activities = (ca: string) =>
        createRegionConfigActivities({
          environments: workerConfig({
            databaseTls: { mode: 'verify-full', ca },
            credentials: { regions: { ref, allowedHosts: [`${host}:${port}`] } },
          }),
        });
      const db = { aws: (sandbox().environment as { aws: { region: string } }).aws, login: login(host, port, 'regions', true) };

      // Secrets Manager calls take the activity's cancellation signal: run them in an activity context.
      const read = (ca: string) =>
        new MockActivityEnvironment().run(activities(ca).readRegions, { db, ids: ['PA'] }) as Promise<RegionRow[]>;
      const rows = await read(sandboxCa);
      assert.deepEqual(
        rows.map((r) => r.id),
        ['PA'],
        'verify-full with the CA that signed the server',
      );

      const rejected = await failure(read(otherCa));
      assert.equal(rejected.type, 'DatabaseCertificateRejected');
      assert.equal(rejected.nonRetryable, true);
      assert.match(
        rejected.message,
        new RegExp(
          `the TLS certificate of ${host.replaceAll('.', '\\.')}:${port} does not verify against the CA bundle ${otherCa.replaceAll('.', '\\.')}`,
        ),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start a worker whose CA bundle is malformed: a config error naming file and field, exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bad-ca-'));
    try {
      const bundle = join(dir, 'bundle.pem');
      writeFileSync(bundle, 'not a certificate\n');
      const configPath = join(dir, 'config.yaml');
      writeFileSync(
        configPath,
        stringify({
          environments: { dev: { aws: { region: 'us-east-1', endpoint: testStack().awsEndpoint }, databaseTls: { ca: bundle } } },
        }),
      );
      const result = await runbook(['worker', '--config', configPath]);
      assert.equal(result.exitCode, 2, result.stdout + result.stderr);
      assert.match(
        result.stderr,
        new RegExp(`environments\\.dev\\.databaseTls\\.ca: CA bundle ${bundle.replaceAll('.', '\\.')} holds no PEM certificate`),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
