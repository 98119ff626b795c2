/**
 * The CLI and the worker reach a TLS-only Temporal frontend (with a required
 * client certificate) through one Temporal client config profile, the TOML
 * file the `temporal` CLI reads. The dev server itself has no TLS flags, so
 * TLS is terminated in front of it by test/helpers/tls-front.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from '@temporalio/worker';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { ConfigError, loadConfig } from '../../src/config.js';
import { runWorkflowId, type RunStatus } from '../../src/messages.js';
import { loadPlugins } from '../../src/plugins.js';
import { temporalTarget } from '../../src/temporal-connection.js';
import { createWorker } from '../../src/worker.js';
import { statusWhen } from '../helpers/stub-worker.js';
import { makePki, startTlsFront, type TlsFront } from '../helpers/tls-front.js';
import { workflowTier } from './setup.js';

const cliPath = fileURLToPath(new URL('../../src/client.js', import.meta.url));
const fixturePlugin = fileURLToPath(new URL('../fixtures/plugin.js', import.meta.url));

describe('secure Temporal connections through a client config profile', function () {
  this.timeout(120_000);
  let dir: string;
  let front: TlsFront;
  let profileFile: string;
  let configPath: string;
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;

  before(async () => {
    dir = join(workflowTier().dir, 'tls');
    mkdirSync(dir, { recursive: true });
    const pki = makePki(dir);
    front = await startTlsFront(pki, workflowTier().temporalAddress);
    profileFile = join(dir, 'temporal.toml');
    writeFileSync(
      profileFile,
      [
        '[profile.secure]',
        `address = "${front.address}"`,
        'namespace = "default"',
        '[profile.secure.tls]',
        'server_name = "localhost"',
        `server_ca_cert_path = "${pki.ca}"`,
        `client_cert_path = "${pki.clientCert}"`,
        `client_key_path = "${pki.clientKey}"`,
        '',
        '[profile.nocert]',
        `address = "${front.address}"`,
        '[profile.nocert.tls]',
        'server_name = "localhost"',
        `server_ca_cert_path = "${pki.ca}"`,
        '',
      ].join('\n'),
    );
    configPath = join(dir, 'runbooks.config.yaml');
    writeFileSync(
      configPath,
      stringify({
        plugins: [fixturePlugin],
        environments: { open: { aws: { region: 'us-east-1' }, approvals: { approvers: ['*'], allowSelfApproval: true } } },
      }),
    );
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await front?.close();
  });

  /** The CLI with only the profile to go by: no TEMPORAL_ADDRESS, no --address. */
  const cli = async (args: string[], profile: string) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TEMPORAL_')));
    const result = await execa(process.execPath, [cliPath, ...args], {
      env: { ...env, TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: profile, RUNBOOK_CONFIG: configPath, RUNBOOK_USER: 'operator' },
      extendEnv: false,
      reject: false,
      timeout: 90_000,
    });
    return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
  };

  it('the worker and the CLI run a runbook over mTLS, both configured by the profile alone', async () => {
    const target = temporalTarget({ env: { TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'secure' } });
    assert.equal(target.address, front.address);
    assert.ok(
      target.secure.tls && typeof target.secure.tls === 'object' && target.secure.tls.clientCertPair,
      'TLS with a client certificate',
    );

    process.env.FIXTURE_LEDGER_DIR = join(dir, 'ledger');
    ({ worker } = await createWorker({
      address: target.address,
      namespace: target.namespace,
      secure: target.secure,
      environments: loadConfig(configPath),
      plugins: await loadPlugins([fixturePlugin]),
      workflowBundlePath: workflowTier().workflowBundlePath,
    }));
    running = worker.run();
    const sessionsBefore = front.accepted.length;
    assert.ok(sessionsBefore >= 1, 'the worker connected through the TLS front');

    const name = `tls-${process.pid}`;
    const started = await cli(['--json', 'start', 'ledger-swap', '--env', 'open', '--set', `name=${name}`, '--wait'], 'secure');
    assert.equal(started.exitCode, 0, started.stderr);
    const { status, uiUrl } = JSON.parse(started.stdout.trim().split('\n').at(-1)!) as { status: RunStatus; uiUrl: string };
    assert.equal(status.waitingFor?.checkpoint, 'delete-old', 'the worker ran the steps up to the checkpoint');
    assert.match(uiUrl, /^https:/);

    const approved = await cli(['approve', runWorkflowId('ledger-swap', 'open', name), '--checkpoint', 'delete-old'], 'secure');
    assert.equal(approved.exitCode, 0, approved.stderr);
    const end = await statusWhen(
      workflowTier().env.client.workflow.getHandle(runWorkflowId('ledger-swap', 'open', name)),
      (s) => s.phase !== 'running',
      30_000,
    );
    assert.equal(end.phase, 'succeeded', 'the worker on the TLS connection finished the run');
    const shown = await cli(['--json', 'status', runWorkflowId('ledger-swap', 'open', name)], 'secure');
    assert.equal((JSON.parse(shown.stdout) as RunStatus).phase, 'succeeded', shown.stderr);
    assert.ok(front.accepted.length > sessionsBefore, 'the CLI connected through the TLS front');
    assert.ok(
      front.accepted.every((cn) => cn === 'runbook-operator'),
      `every session presented the client certificate (${front.accepted.join(', ')})`,
    );
  });

  it('refuses a client without the certificate the frontend requires, and a broken profile is a config error', async () => {
    const refusedBefore = front.refused;
    const nocert = await cli(['ls'], 'nocert');
    assert.equal(nocert.exitCode, 1, nocert.stderr);
    assert.match(nocert.stderr, new RegExp(`cannot reach Temporal at ${front.address} over TLS \\(profile 'nocert'\\)`));
    assert.ok(front.refused > refusedBefore, 'the TLS front refused the handshake');

    const missing = await cli(['ls'], 'nosuch');
    assert.equal(missing.exitCode, 2, missing.stderr);
    assert.match(missing.stderr, new RegExp(`Temporal client config ${profileFile} \\(profile 'nosuch'\\): Profile 'nosuch' not found`));

    const broken = join(dir, 'broken.toml');
    writeFileSync(broken, '[profile.secure]\naddress = "x:1"\ntls = = true\n');
    assert.throws(
      () => temporalTarget({ env: { TEMPORAL_CONFIG_FILE: broken, TEMPORAL_PROFILE: 'secure' } }),
      (err: Error) =>
        err instanceof ConfigError && err.message.startsWith(`Temporal client config ${broken} line 3 (profile 'secure'): Invalid TOML`),
    );
  });
});
