/**
 * prod-tag-deploy's workflow with stub AWS activities: a dry run reads
 * everything and changes nothing, and a rollback announces the deploy freeze
 * it sets (seed 004: "let everyone know to stop them from deploying newer commits").
 */
import assert from 'node:assert/strict';
import type { CanaryResult, DeployService } from '../../src/activities/canary.js';
import type { RepositoryImages } from '../../src/activities/ecr.js';
import type { SucceededDeploy } from '../../src/activities/deploy-runs.js';
import type { SchemaMigrations } from '../../src/activities/schema-migrations.js';
import { approveSignal, type RunNotice } from '../../src/messages.js';
import type { ProdTagDeployParams, ProdTagDeployResult } from '../../src/workflows/prod-tag-deploy.js';
import { runbookInput, statusWhen, useStubWorker } from '../helpers/stub-worker.js';

const params: ProdTagDeployParams = {
  aws: { region: 'us-east-1' },
  mode: 'deploy',
  cluster: 'main',
  service: 'app',
  container: 'app',
  repository: 'app',
  commit: 'c2',
  prodTag: 'prod',
  toleratedFailures: 0,
  healthTimeoutMs: 60_000,
  // The stubs never connect: the login only travels through the workflow.
  database: { field: 'database' } as ProdTagDeployParams['database'],
  protectedEnv: false,
};

const schema: SchemaMigrations = { count: 2, newest: '002', versions: ['001', '002'] };

/** ECR with c1 as prod and c2 pushed; what the run asked AWS to change, and what it told the webhooks. */
function stubAws(options: { deploys?: SucceededDeploy[] } = {}) {
  const calls: string[] = [];
  const notices: RunNotice[] = [];
  const activities = {
    async inspectImages({ commit }: { commit: string }): Promise<RepositoryImages> {
      return {
        repositoryUri: 'acct.dkr.ecr/app',
        commitDigest: `sha256:${commit}`,
        prodDigest: commit === 'c1' ? 'sha256:c2' : 'sha256:c1',
        prodTags: ['prod', commit === 'c1' ? 'c2' : 'c1'],
      };
    },
    async inspectDeployService(): Promise<DeployService> {
      return {
        desiredCount: 4,
        deploymentInProgress: false,
        taskDefinitionArn: 'arn:td/app:7',
        images: [{ container: 'app', image: 'acct.dkr.ecr/app:prod' }],
        targetGroupArns: ['arn:tg/app'],
      };
    },
    async readSchemaMigrations(): Promise<SchemaMigrations> {
      return schema;
    },
    async findServiceHolders(): Promise<string[]> {
      return [];
    },
    async findSucceededDeploys(): Promise<SucceededDeploy[]> {
      return options.deploys ?? [];
    },
    async moveTag({ digest }: { digest: string }) {
      calls.push(`tag prod -> ${digest}`);
      return { moved: true };
    },
    async forceNewDeployment() {
      calls.push('redeploy');
    },
    async watchCanary({ digest }: { digest: string }): Promise<CanaryResult> {
      calls.push(`watch ${digest}`);
      return { newTaskArns: ['t1', 't2', 't3', 't4'], failures: [], minHealthy: 4, polls: 3 };
    },
    async notifyRun(notice: RunNotice) {
      notices.push(notice);
    },
  };
  return { calls, notices, activities };
}

describe('prod-tag-deploy workflow, with stub AWS', () => {
  const stubs = useStubWorker([
    'inspectImages',
    'inspectDeployService',
    'readSchemaMigrations',
    'findServiceHolders',
    'findSucceededDeploys',
    'moveTag',
    'forceNewDeployment',
    'watchCanary',
    'notifyRun',
  ]);

  it('a dry run reads the images, the service and the schema, and changes nothing', async () => {
    const aws = stubAws();
    const { start } = stubs.serve(aws.activities);
    const handle = await start('prodTagDeploy', runbookInput('prod-tag-deploy', params, { dryRun: true }));
    const result = (await handle.result()) as ProdTagDeployResult;
    assert.equal(result.digest, 'sha256:c2');
    assert.deepEqual(result.previous, { digest: 'sha256:c1', commit: 'c1' });
    const status = await statusWhen(handle, () => true);
    const byName = Object.fromEntries(status.steps.map((s) => [s.name, s]));
    assert.equal(byName.preflight?.status, 'done');
    assert.match(byName.retag?.detail ?? '', /^would /);
    assert.match(byName.redeploy?.detail ?? '', /^would /);
    assert.deepEqual(aws.calls, []);
  });

  it('a rollback freezes deploys and tells every route of the `frozen` event who must not deploy what', async () => {
    const madeProd: SucceededDeploy = {
      workflowId: 'prod-tag-deploy:test:app:c1',
      runId: 'r1',
      closedAt: '2026-11-30T10:00:00.000Z',
      result: { mode: 'deploy', digest: 'sha256:c1', schemaAfter: schema },
    };
    const aws = stubAws({ deploys: [madeProd] });
    const { start } = stubs.serve(aws.activities);
    const input = runbookInput(
      'prod-tag-deploy',
      { ...params, mode: 'rollback', commit: 'c1' },
      {
        policy: {
          notify: true,
          notifications: [
            { webhook: 'ops-chat', events: ['frozen'] },
            { webhook: 'pager', events: ['failed'] },
          ],
        },
      },
    );
    const handle = await start('prodTagDeploy', input);
    await statusWhen(handle, (s) => s.waitingFor?.checkpoint === 'rollback');
    await handle.signal(approveSignal, { checkpoint: 'rollback', by: 'bob' });
    const result = (await handle.result()) as ProdTagDeployResult;
    assert.equal(result.freeze?.badCommit, 'c2');
    assert.deepEqual(aws.calls, ['tag prod -> sha256:c1', 'redeploy', 'watch sha256:c1']);
    assert.deepEqual(
      aws.notices.map((n) => `${n.event} -> ${n.webhook}`),
      ['frozen -> ops-chat'],
    );
    assert.match(
      aws.notices[0]?.detail ?? '',
      /c2 was rolled back\. Do not deploy newer commits: the next deploy must fix c2 and say so with --set fixesCommit=c2/,
    );
  });
});
