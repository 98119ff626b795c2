/**
 * Root hooks of the end-to-end tier (`npm run test:e2e`, the specs directly in
 * test/): one local stack (Temporal, moto, PostgreSQL), one seeded sandbox,
 * one prebuilt workflow bundle and one worker process for the whole test run.
 * The unit (test/unit/) and workflow (test/workflows/) tiers do not load this file.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { stringify } from 'yaml';
import { execa } from 'execa';
import { installRuntime } from '../src/worker.js';
import { MOTO_AWS_ENV } from '../src/stack/index.js';
import { REGIONS_CREDENTIAL } from '../src/stack/sandbox/regions.js';
import { SANDBOX_SOURCE } from '../src/stack/sandbox/db.js';
import { freePorts } from '../src/stack/ports.js';
import { startSharedWorker, stopSharedWorker } from './helpers/worker.js';
import { startWebhook, type Webhook } from './helpers/webhook.js';
import { fixturePluginPath, SHARED_STACK_ENV, startSharedStack, type SharedStack, type SharedStackInfo } from './helpers/shared-stack.js';
import { remoteSandbox, type TestSandbox } from './helpers/sandbox-control.js';

export { fixturePluginPath };

export interface TestStack {
  temporalAddress: string;
  /** This process's Temporal namespace: its lane's, or `default` when the file runs alone. */
  namespace: string;
  uiUrl: string;
  awsEndpoint: string;
  postgresUrl: string;
  pgBinDir: string;
  configPath: string;
  temporalCli: string;
  ledgerDir: string;
  workflowBundlePath: string;
  /** Environment every CLI and worker process of the tests runs with. */
  env: Record<string, string>;
  dir: string;
}

/** The stack this process started (a file run alone); undefined when it attached to a lane runner's. */
let ownStack: SharedStack | undefined;
let sandboxHandle: TestSandbox | undefined;
let shared: TestStack | undefined;
let webhookReceiver: Webhook | undefined;
let lastMark = Date.now();
const fileMs: Record<string, number> = {};

/** What runs posted to the `notified` environment's webhook. */
export function webhook(): Webhook {
  if (!webhookReceiver) throw new Error('the webhook receiver is not running');
  return webhookReceiver;
}

export function testStack(): TestStack {
  if (!shared) throw new Error('the test stack is not running (root hooks did not run?)');
  return shared;
}

export function sandbox(): TestSandbox {
  if (!sandboxHandle) throw new Error('the sandbox is not seeded');
  return sandboxHandle;
}

/**
 * Environments the tests need besides the sandbox, all on the sandbox's resources:
 * production-like approvals (guarded), a short checkpoint timeout (hasty), and a
 * staging/production pair for the rules that tie production to staging.
 */
/**
 * Terraform directories tests fill with their own fixture copies. A run names
 * one from the environment's allowlist (terraform.dirs), never a path, so the
 * names exist in the config before the directories do.
 */
export const TEST_TERRAFORM_DIRS = ['swap-guard', 'swap-apply', 'db-managed', 'db-apply'] as const;

/**
 * The credential db-migration's Terraform mode gives the application on the new
 * instance: the `database_password` output of the run's Terraform configuration
 * (test/fixtures/terraform-aws-db), bound, like the sandbox's, to its instances.
 */
export const TERRAFORM_APP_CREDENTIAL = 'app-db-terraform';

function withTestTerraformDirs(env: Record<string, unknown>, root: string): Record<string, unknown> {
  const terraform = (env.terraform ?? {}) as { dirs?: Record<string, string> };
  const dirs = Object.fromEntries(TEST_TERRAFORM_DIRS.map((name) => [name, join(root, name)]));
  const credentials = {
    ...(env.credentials as Record<string, unknown>),
    [TERRAFORM_APP_CREDENTIAL]: { ref: 'terraform-output:database_password', allowedInstances: [`${SANDBOX_SOURCE}*`] },
  };
  return { ...env, credentials, terraform: { ...terraform, dirs: { ...terraform.dirs, ...dirs } } };
}

function testEnvironments(sandboxEnv: Record<string, unknown>, webhookUrl: string, sandbox: TestSandbox): Record<string, unknown> {
  const aws = sandboxEnv.aws;
  const runbooks = sandboxEnv.runbooks as Record<string, Record<string, unknown>>;
  const { credentials, databaseTls } = sandboxEnv;
  // Protected: database hosts only from the RDS API, so the region_config database is the emulator's RDS instance,
  // mapped by the worker to the local server, and its credential is bound to that instance.
  const server = new URL(sandbox.regions.databaseUrl);
  const protectedDb = {
    credentials: { [REGIONS_CREDENTIAL]: { ref: sandbox.regions.credentialRef, allowedInstances: [sandbox.regions.instance] } },
    databaseTls,
    emulatedRds: { host: server.hostname, port: Number(server.port) },
  };
  const byInstance = (inputs: Record<string, unknown> | undefined) => {
    const { host: _host, ...database } = inputs?.database as Record<string, unknown>;
    return { ...inputs, database: { ...database, instance: sandbox.regions.instance } };
  };
  return {
    guarded: {
      description: 'production-like approvals',
      protected: true,
      aws,
      approvals: { approvers: ['alice', 'bob'], allowSelfApproval: false },
    },
    hasty: {
      aws,
      approvals: { approvers: ['*'], allowSelfApproval: true, timeout: '1h', timeouts: { 'delete-old': '2s' } },
    },
    notified: { aws, approvals: { approvers: ['alice', 'bob'], allowSelfApproval: false, webhook: webhookUrl } },
    // Every event to a Slack-style receiver, `started` also to one that refuses connections; reminders within seconds.
    chatty: {
      aws,
      approvals: { approvers: ['*'], allowSelfApproval: true, timeout: '1h', timeouts: { 'delete-old': '6s' } },
      notify: [{ webhook: 'chat' }, { webhook: 'unreachable', events: ['started'] }],
    },
    staging: { aws, approvals: { approvers: ['*'], allowSelfApproval: true }, credentials, databaseTls, runbooks },
    production: {
      protected: true,
      aws,
      approvals: { approvers: ['qa-lead', 'dba', 'alice', 'bob'], allowSelfApproval: false },
      ...protectedDb,
      runbooks: {
        ...runbooks,
        'region-data-update': { ...byInstance(runbooks['region-data-update']), stagingEnv: 'staging' },
        'ecs-migration': byInstance(runbooks['ecs-migration']),
        'prod-tag-deploy': byInstance(runbooks['prod-tag-deploy']),
      },
    },
  };
}

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(15 * 60_000); // a cold machine builds the Temporal CLI first
    installRuntime();
    const dir = mkdtempSync(join(tmpdir(), 'runbook-test-'));
    // A lane of the e2e runner attaches to the runner's stack; a file run alone starts its own.
    const attachTo = process.env[SHARED_STACK_ENV];
    let info: SharedStackInfo;
    if (attachTo) {
      info = JSON.parse(readFileSync(attachTo, 'utf8')) as SharedStackInfo;
      sandboxHandle = remoteSandbox(info.sandbox, info.postgresUrl, info.sandboxControlUrl!);
    } else {
      ownStack = await startSharedStack(dir);
      info = ownStack.info;
      sandboxHandle = ownStack.sandbox;
    }
    Object.assign(process.env, MOTO_AWS_ENV, { AWS_REGION: 'us-east-1' });
    const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
    webhookReceiver = await startWebhook();

    const configPath = join(dir, 'runbooks.config.yaml');
    writeFileSync(
      configPath,
      stringify({
        webhooks: {
          chat: { url: 'env:RUNBOOK_SECRET_CHAT_WEBHOOK', format: 'slack' },
          // A port nothing listens on: connections are refused.
          unreachable: { url: `http://127.0.0.1:${(await freePorts(1))[0]}/hook` },
        },
        plugins: [fixturePluginPath],
        environments: {
          sandbox: withTestTerraformDirs(sandboxHandle.environment, join(dir, 'terraform-dirs')),
          ...testEnvironments(sandboxHandle.environment, webhookReceiver.url, sandboxHandle),
        },
      }),
    );
    const ledgerDir = join(dir, 'ledger');
    shared = {
      temporalAddress: info.temporalAddress,
      namespace,
      uiUrl: info.uiUrl,
      awsEndpoint: info.awsEndpoint,
      postgresUrl: info.postgresUrl,
      pgBinDir: info.pgBinDir,
      configPath,
      temporalCli: info.temporalCli,
      ledgerDir,
      workflowBundlePath: info.workflowBundlePath,
      dir,
      env: {
        ...MOTO_AWS_ENV,
        AWS_REGION: 'us-east-1',
        TEMPORAL_ADDRESS: info.temporalAddress,
        TEMPORAL_NAMESPACE: namespace,
        TEMPORAL_UI_URL: info.uiUrl,
        RUNBOOK_CONFIG: configPath,
        RUNBOOK_WORKFLOW_BUNDLE: info.workflowBundlePath,
        FIXTURE_LEDGER_DIR: ledgerDir,
        RUNBOOK_USER: 'tester',
        // The chat webhook's URL reaches the worker only through its environment, as a secret would.
        RUNBOOK_SECRET_CHAT_WEBHOOK: webhookReceiver.url,
        // Where tests arm and open test gates (src/activities/test-gates.ts); inert until a test arms one.
        RUNBOOK_TEST_GATES_DIR: join(dir, 'gates'),
        // The sandbox's worker reads what its ECS simulator records (exit codes moto cannot report).
        ...sandboxHandle.workerEnv,
      },
    };
    await startSharedWorker();
    lastMark = Date.now();
  },

  /** Time per file (its hooks and tests), printed at the end for the lane runner to balance lanes by. */
  afterEach(this: Mocha.Context) {
    const file = this.currentTest?.file;
    if (!file) return;
    const name = basename(file, '.test.js');
    fileMs[name] = (fileMs[name] ?? 0) + (Date.now() - lastMark);
    lastMark = Date.now();
  },

  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    console.log(
      `e2e-file-times ${JSON.stringify(Object.fromEntries(Object.entries(fileMs).map(([f, ms]) => [f, Math.round(ms / 1000)])))}`,
    );
    await stopSharedWorker();
    if (shared && process.env.RUNBOOK_RECORD_HISTORIES) await recordHistories(shared, process.env.RUNBOOK_RECORD_HISTORIES);
    await webhookReceiver?.close();
    await ownStack?.stop();
    if (shared && !process.env.RUNBOOK_KEEP_TEST_DIR) rmSync(shared.dir, { recursive: true, force: true });
  },
};

/**
 * `RUNBOOK_RECORD_HISTORIES=<dir>`: every run's history, as `temporal workflow
 * show -o json` writes it, for picking new replay fixtures (test/histories/).
 */
async function recordHistories(stack: TestStack, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const cli = (...args: string[]) =>
    execa(stack.temporalCli, [...args, '--address', stack.temporalAddress, '--namespace', stack.namespace, '-o', 'json']);
  const runs = JSON.parse((await cli('workflow', 'list', '--limit', '1000')).stdout || '[]') as Array<{
    execution: { workflowId: string; runId: string };
  }>;
  for (const { execution } of runs) {
    const history = await cli('workflow', 'show', '-w', execution.workflowId, '-r', execution.runId);
    writeFileSync(join(dir, `${execution.workflowId.replace(/[^\w.-]+/g, '_')}-${execution.runId.slice(0, 8)}.json`), history.stdout);
  }
  console.log(`recorded ${runs.length} histories of namespace ${stack.namespace} in ${dir}`);
}
