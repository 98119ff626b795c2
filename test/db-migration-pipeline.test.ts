/**
 * db-migration pauses the deploy pipeline (seed 002: "the deployment process
 * for the API should also be stopped because it touches the database"): the
 * transition into the configured stage is disabled for the run and enabled
 * again however it ends, unless an operator had disabled it. Read back with
 * CodePipeline's GetPipelineState through the real SDK, from moto with our
 * extension (src/stack/moto-extensions/codepipeline_transitions.py). Each
 * test moves its own source instance and pauses its own pipeline.
 */
import assert from 'node:assert/strict';
import {
  CodePipelineClient,
  DisableStageTransitionCommand,
  EnableStageTransitionCommand,
  GetPipelineStateCommand,
  type TransitionState,
} from '@aws-sdk/client-codepipeline';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { DescribeServicesCommand, ECSClient } from '@aws-sdk/client-ecs';
import { createCodePipelineActivities, type PauseResult, type ResumeResult } from '../src/activities/codepipeline.js';
import type { RunStatus } from '../src/messages.js';
import { SANDBOX_SOURCE, WRITERS_CLUSTER, type SeededAppDatabase } from '../src/stack/sandbox/db.js';
import { DEPLOY_STAGE, seedDeployPipeline } from '../src/stack/sandbox/deploy-pipeline.js';
import { sandbox, testStack } from './setup.js';
import { queryApp } from './helpers/sandbox-app.js';
import { runbook } from './helpers/cli.js';
import { temporalClient, waitForStatus, waitUntil } from './helpers/wait.js';
import { worker } from './helpers/worker.js';

const REGION = 'us-east-1';
const MOTO = { region: REGION, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } };
const idFor = (source: string) => `db-migration:sandbox:${source}`;
const ended = (s: RunStatus) => s.phase !== 'running' && s.phase !== 'waiting';

let counter = 0;

describe('db-migration pauses the deploy pipeline', function () {
  this.timeout(4 * 60_000);
  let codePipeline: CodePipelineClient;
  let ecs: ECSClient;

  before(() => {
    codePipeline = new CodePipelineClient({ endpoint: testStack().awsEndpoint, ...MOTO });
    ecs = new ECSClient({ endpoint: testStack().awsEndpoint, ...MOTO });
  });

  after(() => {
    codePipeline?.destroy();
    ecs?.destroy();
  });

  async function newPipeline(label: string): Promise<{ name: string; stage: string }> {
    return seedDeployPipeline({
      awsEndpoint: testStack().awsEndpoint,
      region: REGION,
      name: `deploys-${label}-${process.pid}-${++counter}`,
      artifactBucket: 'sandbox-pipeline-artifacts',
    });
  }

  async function transition(pipeline: { name: string; stage: string }): Promise<TransitionState> {
    const { stageStates = [] } = await codePipeline.send(new GetPipelineStateCommand({ name: pipeline.name }));
    return stageStates.find((s) => s.stageName === pipeline.stage)!.inboundTransitionState!;
  }

  async function awsError(call: () => Promise<unknown>): Promise<string> {
    try {
      await call();
    } catch (err) {
      return `${(err as Error).name}: ${(err as Error).message}`;
    }
    return 'no error';
  }

  describe('the emulator (moto with our extension) through the real SDK', () => {
    it('disables and enables a stage transition, and reports it in GetPipelineState', async () => {
      const pipeline = await newPipeline('moto');
      const { stageStates = [] } = await codePipeline.send(new GetPipelineStateCommand({ name: pipeline.name }));
      assert.deepEqual(
        stageStates.map((s) => [s.stageName, s.inboundTransitionState?.enabled]),
        [
          ['Source', undefined],
          ['Build', true],
          [DEPLOY_STAGE, true],
        ],
        'every stage but the first has an inbound transition, enabled until changed',
      );
      const target = { pipelineName: pipeline.name, stageName: DEPLOY_STAGE, transitionType: 'Inbound' as const };
      await codePipeline.send(new DisableStageTransitionCommand({ ...target, reason: 'Frozen for the release (ops)' }));
      const disabled = await transition(pipeline);
      assert.equal(disabled.enabled, false);
      assert.equal(disabled.disabledReason, 'Frozen for the release (ops)');
      assert.match(disabled.lastChangedBy ?? '', /^arn:aws:/);
      assert.ok(disabled.lastChangedAt instanceof Date && Math.abs(disabled.lastChangedAt.getTime() - Date.now()) < 60_000);
      await codePipeline.send(new EnableStageTransitionCommand(target));
      assert.equal((await transition(pipeline)).enabled, true);

      assert.match(
        await awsError(() => codePipeline.send(new GetPipelineStateCommand({ name: 'no-such-pipeline' }))),
        /^PipelineNotFoundException: .*no-such-pipeline/,
      );
      assert.match(
        await awsError(() => codePipeline.send(new EnableStageTransitionCommand({ ...target, stageName: 'Nope' }))),
        /^StageNotFoundException: Stage 'Nope' not found/,
      );
      assert.match(
        await awsError(() => codePipeline.send(new DisableStageTransitionCommand({ ...target, reason: 'no: colons' }))),
        /^ValidationException: .*reason/,
      );
      assert.match(
        await awsError(() => codePipeline.send(new DisableStageTransitionCommand({ ...target, stageName: 'Source', reason: 'x' }))),
        /^ValidationException: Stage 'Source' has no inbound transition/,
      );
    });
  });

  describe('the activities, against the emulator', () => {
    const activities = createCodePipelineActivities({});
    // Refusals are expected here: the worker's log of each failed activity is noise.
    const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    type Ref = Parameters<typeof activities.pauseStageTransition>[0];
    const pause = (args: Ref): Promise<PauseResult> => env.run(activities.pauseStageTransition, args);
    const resume = (args: Ref): Promise<ResumeResult> => env.run(activities.resumeStageTransition, args);
    const aws = { region: REGION, endpoint: '' };
    const holder = (runId: string) => ({ runbook: 'db-migration', runId });

    // The default credential chain: test/setup.ts puts moto's keys in this process's environment.
    before(() => {
      aws.endpoint = testStack().awsEndpoint;
    });

    it('two runs share a pause: the first to resume leaves it to the second; retries change nothing', async () => {
      const pipeline = await newPipeline('shared');
      const ref = { aws, pipeline: pipeline.name, stage: pipeline.stage, field: 'deployPipeline' };
      const first = await pause({ ...ref, holder: holder('run-a') });
      assert.equal(first.found, 'enabled');
      const retried = await pause({ ...ref, holder: holder('run-a') });
      assert.equal(retried.found, 'enabled', 'a retried pause recognises its own');
      assert.equal(retried.state.disabledReason, 'Paused by temporal-runbooks (db-migration) for run run-a');
      const second = await pause({ ...ref, holder: holder('run-b') });
      assert.equal(second.found, 'runs');
      assert.equal(second.state.disabledReason, 'Paused by temporal-runbooks (db-migration) for runs run-a run-b');

      const resumedA = await resume({ ...ref, holder: holder('run-a') });
      assert.equal(resumedA.outcome, 'still-held');
      assert.equal((await transition(pipeline)).enabled, false, 'run-b still holds it');
      assert.equal((await resume({ ...ref, holder: holder('run-a') })).outcome, 'left');
      const resumedB = await resume({ ...ref, holder: holder('run-b') });
      assert.equal(resumedB.outcome, 'enabled');
      assert.equal((await transition(pipeline)).enabled, true);
    });

    it('refuses, naming the field, a pipeline or stage that does not exist and the first stage', async () => {
      const pipeline = await newPipeline('refuse');
      const ref = { aws, pipeline: pipeline.name, stage: pipeline.stage, field: 'deployPipeline' };
      await assert.rejects(env.run(activities.checkStageTransition, { ...ref, pipeline: 'nope' }), /deployPipeline\.name: no CodePipeline/);
      await assert.rejects(
        env.run(activities.checkStageTransition, { ...ref, stage: 'Nope' }),
        /deployPipeline\.stage: pipeline \S+ has no stage Nope \(its stages: Source, Build, Deploy\)/,
      );
      await assert.rejects(
        env.run(activities.checkStageTransition, { ...ref, stage: 'Source' }),
        /deployPipeline\.stage: Source is the first stage/,
      );
    });
  });

  describe('runs on the sandbox', () => {
    beforeEach(() => worker().start());

    async function seedSource(label: string): Promise<SeededAppDatabase> {
      // Named after the sandbox's instance: the sandbox's credentials are bound to `sandbox-appdb*`.
      const instance = `${SANDBOX_SOURCE}-pipe-${label}-${process.pid}-${++counter}`;
      return sandbox().db.seedAppDatabase({ instance, writerService: `writer-pipe-${label}-${counter}`, orders: 200 });
    }

    function startArgs(source: SeededAppDatabase, pipeline: { name: string; stage: string }, extra: string[] = []): string[] {
      return [
        'start',
        'db-migration',
        '--env',
        'sandbox',
        '--set',
        `sourceInstance=${source.instance}`,
        '--set',
        `newInstance.identifier=${source.instance}-new`,
        '--set',
        `writers=${JSON.stringify([source.writer])}`,
        '--set',
        'mode=dump',
        '--set',
        `deployPipeline=${JSON.stringify(pipeline)}`,
        ...extra,
      ];
    }

    async function runIdOf(id: string): Promise<string> {
      return (await (await temporalClient()).workflow.getHandle(id).describe()).runId;
    }

    async function decide(id: string, checkpoint: 'cutover' | 'delete-old', decision: 'approve' | 'reject' = 'approve'): Promise<void> {
      await waitForStatus(id, (s) => s.waitingFor?.checkpoint === checkpoint, 120_000);
      const result = await runbook([decision, id, '--checkpoint', checkpoint, ...(decision === 'reject' ? ['--reason', 'not today'] : [])]);
      assert.equal(result.exitCode, 0, result.stderr);
    }

    async function closed(id: string): Promise<void> {
      const handle = (await temporalClient()).workflow.getHandle(id);
      await waitUntil(async () => (await handle.describe()).status.name !== 'RUNNING', { timeoutMs: 60_000, what: `${id} to close` });
    }

    function step(status: RunStatus, name: string) {
      return status.steps.find((s) => s.name === name)!;
    }

    it('disabled before the writers stop and while the run waits at cutover, enabled after success', async () => {
      const pipeline = await newPipeline('success');
      const source = await seedSource('success');
      const id = idFor(source.instance);
      const started = await runbook(startArgs(source, pipeline));
      assert.equal(started.exitCode, 0, started.stderr);

      const atCutover = await waitForStatus(id, (s) => s.waitingFor?.checkpoint === 'cutover', 120_000);
      const paused = await transition(pipeline);
      assert.equal(paused.enabled, false, 'no deploy reaches the database while the run waits');
      assert.equal(paused.disabledReason, `Paused by temporal-runbooks (db-migration) for run ${await runIdOf(id)}`);
      const pause = step(atCutover, 'pause-deploys');
      assert.equal(pause.status, 'done');
      assert.ok(pause.endedAt! <= step(atCutover, 'stop-writers').startedAt!, 'paused before the writers stop');
      assert.match(pause.detail ?? '', new RegExp(`transition into ${DEPLOY_STAGE} disabled`));

      await decide(id, 'cutover');
      await decide(id, 'delete-old');
      const final = await waitForStatus(id, ended, 120_000);
      assert.equal(final.phase, 'succeeded', final.error ?? '');
      assert.equal((await transition(pipeline)).enabled, true, 'deploys flow again');
      assert.equal(step(final, 'resume-deploys').status, 'done');
      assert.match(step(final, 'resume-deploys').detail ?? '', /enabled: deploys flow again/);
    });

    it('enabled again after a rejection at cutover (rolled back)', async () => {
      const pipeline = await newPipeline('reject');
      const source = await seedSource('reject');
      const id = idFor(source.instance);
      assert.equal((await runbook(startArgs(source, pipeline))).exitCode, 0);
      await waitForStatus(id, (s) => s.waitingFor?.checkpoint === 'cutover', 120_000);
      assert.equal((await transition(pipeline)).enabled, false);

      await decide(id, 'cutover', 'reject');
      const final = await waitForStatus(id, ended, 120_000);
      assert.equal(final.phase, 'rolled-back', final.error ?? '');
      assert.equal((await transition(pipeline)).enabled, true);
      assert.equal(step(final, 'pause-deploys').status, 'compensated');
      assert.equal(step(final, 'resume-deploys').status, 'skipped');
    });

    it('enabled again after a failure past the point of no return, which the error names as released', async () => {
      const pipeline = await newPipeline('late-failure');
      const source = await seedSource('late-failure');
      const target = `${source.instance}-new`;
      const id = idFor(source.instance);
      assert.equal((await runbook(startArgs(source, pipeline))).exitCode, 0);
      await decide(id, 'cutover');
      await waitForStatus(id, (s) => s.waitingFor?.checkpoint === 'delete-old', 120_000);
      assert.equal((await transition(pipeline)).enabled, false, 'still paused while the writers run on the new database');
      // The copy loses rows while the approver thinks it over: the recount before the delete fails the run.
      await queryApp(target, 'DELETE FROM audit_log WHERE ctid IN (SELECT ctid FROM audit_log LIMIT 5)');
      await decide(id, 'delete-old');

      const final = await waitForStatus(id, ended, 120_000);
      assert.equal(final.phase, 'failed');
      assert.match(final.error ?? '', /nothing undone: the writers run on .*; released: enable the transition into Deploy/);
      assert.equal((await transition(pipeline)).enabled, true, 'deploys flow again');
    });

    it("an operator's pause stays after the run", async () => {
      const pipeline = await newPipeline('operator');
      const source = await seedSource('operator');
      const id = idFor(source.instance);
      const reason = 'Frozen by ops for the release';
      await codePipeline.send(
        new DisableStageTransitionCommand({ pipelineName: pipeline.name, stageName: pipeline.stage, transitionType: 'Inbound', reason }),
      );
      const before = await transition(pipeline);

      assert.equal((await runbook(startArgs(source, pipeline))).exitCode, 0);
      await decide(id, 'cutover');
      await decide(id, 'delete-old');
      const final = await waitForStatus(id, ended, 120_000);
      assert.equal(final.phase, 'succeeded', final.error ?? '');
      assert.deepEqual(await transition(pipeline), before, 'left exactly as the operator set it');
      assert.match(step(final, 'pause-deploys').detail ?? '', /already disabled by .*Frozen by ops for the release.*left disabled/);
      assert.match(step(final, 'resume-deploys').detail ?? '', /left disabled as an operator set it/);
    });

    it('a dry run says what it would pause and pauses nothing', async () => {
      const pipeline = await newPipeline('dry');
      const source = await seedSource('dry');
      const id = idFor(source.instance);
      assert.equal((await runbook(startArgs(source, pipeline, ['--dry-run']))).exitCode, 0);
      const final = await waitForStatus(id, ended, 120_000);
      assert.equal(final.phase, 'succeeded', final.error ?? '');
      assert.equal(
        step(final, 'pause-deploys').detail,
        `would disable the transition into stage ${DEPLOY_STAGE} of pipeline ${pipeline.name}, so no deploy reaches the database during the run`,
      );
      assert.equal((await transition(pipeline)).enabled, true);
    });

    it('an unknown pipeline or stage is refused in preflight, exit 2, before anything changes', async () => {
      const pipeline = await newPipeline('unknown');
      const source = await seedSource('unknown');
      const id = idFor(source.instance);
      const desired = async () =>
        (await ecs.send(new DescribeServicesCommand({ cluster: WRITERS_CLUSTER, services: [source.writer.service] }))).services![0]!
          .desiredCount;
      const before = await desired();

      const noPipeline = await runbook(startArgs(source, { ...pipeline, name: `${pipeline.name}-nope` }));
      assert.equal(noPipeline.exitCode, 2, noPipeline.stdout + noPipeline.stderr);
      assert.match(noPipeline.stdout + noPipeline.stderr, /deployPipeline\.name: no CodePipeline pipeline \S+-nope/);
      await closed(id);

      const noStage = await runbook(startArgs(source, { ...pipeline, stage: 'Migrate' }));
      assert.equal(noStage.exitCode, 2, noStage.stdout + noStage.stderr);
      assert.match(noStage.stdout + noStage.stderr, /deployPipeline\.stage: pipeline \S+ has no stage Migrate/);
      await closed(id);

      const badName = await runbook(startArgs(source, { ...pipeline, name: 'has:colon' }));
      assert.equal(badName.exitCode, 2);
      assert.match(badName.stderr, /deployPipeline\.name: a CodePipeline pipeline name/);

      assert.equal(await desired(), before, 'the writers were not touched');
      assert.equal((await transition(pipeline)).enabled, true, 'the pipeline was not touched');
    });
  });
});
