/**
 * Seed 004, "Our deployment":
 *
 *   CD pushes each commit's image to ECR
 *   deploying tags the commit's image `prod`; ECS runs what `prod` points at,
 *     replacing its tasks one at a time (a canary: a failing new task stops it)
 *   rolling back re-tags the previous commit's image `prod`,
 *     which is NOT possible once a migration ran since that image was prod
 *   after a rollback, nobody deploys newer commits until the bad one is fixed
 *
 * Deploy: a failed canary is undone (the tag moves back, ECS redeploys, the
 * run waits until the old image serves again) unless the schema changed
 * meanwhile: then the old image may not fit it, nothing is undone, and the
 * run says to roll forward. Rollback: refused when `schema_migration` has
 * rows that were not there when the target image was last made prod (or when
 * no run recorded that, unless overridden with a reason); it always asks for
 * approval, and freezes deploys until one names the commit it fixes.
 */
import { patched, workflowInfo } from '@temporalio/workflow';
import type { AwsConnection } from '../config.js';
import type { RunbookInput } from '../messages.js';
import type { CanaryActivities, CanaryResult, DeployService } from '../activities/canary.js';
import type { DeployRunsActivities, SucceededDeploy } from '../activities/deploy-runs.js';
import type { EcrActivities, RepositoryImages } from '../activities/ecr.js';
import type { Login } from '../activities/pg-connect.js';
import type { SchemaMigrationActivities, SchemaMigrations } from '../activities/schema-migrations.js';
import { definePlan, refuseIf, refuseIfHeld, runRunbook, stepActivities, API_RETRY, WAIT_RETRY, type RunbookOf } from './engine/index.js';

export interface ProdTagDeployParams {
  aws: AwsConnection;
  mode: 'deploy' | 'rollback';
  cluster: string;
  service: string;
  /** The container whose image the tag names. */
  container: string;
  repository: string;
  /** The commit (image tag) to make prod. */
  commit: string;
  prodTag: string;
  toleratedFailures: number;
  healthTimeoutMs: number;
  /** Where `schema_migration` is. */
  database: Login;
  protectedEnv: boolean;
  /** During a freeze, the bad commit this deploy fixes. */
  fixesCommit?: string;
  /** Roll back although no run recorded the schema when the target was prod; recorded with the run. */
  rollbackOverrideReason?: string;
}

export interface DeployFreeze {
  /** The commit rolled back from: no newer commit deploys until one names it in `fixesCommit`. */
  badCommit: string;
  since: string;
  byRun: string;
}

export interface ProdTagDeployResult {
  mode: 'deploy' | 'rollback';
  commit: string;
  /** The digest now prod: what a later rollback looks for. */
  digest: string;
  previous: { digest: string; commit: string | null };
  newTaskArns: string[];
  minHealthy: number;
  schemaBefore: SchemaMigrations;
  schemaAfter: SchemaMigrations;
  /** Rollback: the run that made this digest prod before, or the override. */
  basis: { workflowId: string; closedAt: string } | { override: string } | null;
  freeze: DeployFreeze | null;
  fixes: string | null;
}

export const prodTagDeployPlan = definePlan({
  steps: ['preflight', 'deploy', 'rollback', 'retag', 'redeploy', 'watch-canary', 'read-schema', 'set-freeze'],
  checkpoints: ['deploy', 'rollback'],
});

/** The engine, typed for this plan: a misspelt step name does not compile. */
type Deploy = RunbookOf<ProdTagDeployParams, typeof prodTagDeployPlan>;

const aws = stepActivities<EcrActivities & CanaryActivities & DeployRunsActivities & SchemaMigrationActivities>({
  startToCloseTimeout: '1 minute',
  retry: API_RETRY,
});

function watchActivities(timeoutMs: number) {
  return stepActivities<CanaryActivities>({
    startToCloseTimeout: timeoutMs + 5 * 60_000,
    heartbeatTimeout: '10 seconds',
    retry: WAIT_RETRY,
  });
}

/** What preflight found; every step reads from here. */
interface Found {
  images: RepositoryImages & { commitDigest: string; prodDigest: string };
  previousCommit: string | null;
  service: DeployService;
  targetGroupArn: string;
  schema: SchemaMigrations;
  basis: ProdTagDeployResult['basis'];
}

export async function prodTagDeploy(input: RunbookInput): Promise<ProdTagDeployResult> {
  return runRunbook(input, prodTagDeployPlan, async (rb: Deploy) => {
    const p = rb.params;
    const found = await rb.read(
      'preflight',
      `read ${p.repository}:${p.commit} and :${p.prodTag}, ${p.service}, schema_migration and the runs on ${p.service}`,
      () => preflight(rb),
      { detail: preflightDetail(p) },
    );
    await approve(rb, found);
    await retag(rb, found);
    await redeploy(rb);
    const canary = await watchCanary(rb, found);
    const after = await readSchema(rb);
    const freeze = await setFreeze(rb, found);
    return {
      mode: p.mode,
      commit: p.commit,
      digest: found.images.commitDigest,
      previous: { digest: found.images.prodDigest, commit: found.previousCommit },
      newTaskArns: canary.newTaskArns,
      minHealthy: canary.minHealthy,
      schemaBefore: found.schema,
      schemaAfter: after,
      basis: found.basis,
      freeze,
      fixes: p.fixesCommit ?? null,
    };
  });
}

async function approve(rb: Deploy, found: Found): Promise<void> {
  const p = rb.params;
  const what = `${p.service} on ${rb.env}: prod ${found.previousCommit ?? found.images.prodDigest} -> ${p.commit} (${found.images.commitDigest})`;
  if (p.mode === 'rollback') {
    rb.skip('deploy', 'rollback mode');
    await rb.checkpoint(
      'rollback',
      `roll back ${what}; afterwards deploys are frozen until one names fixesCommit=${found.previousCommit ?? '(the bad commit)'}`,
    );
    return;
  }
  rb.skip('rollback', 'deploy mode');
  if (!p.protectedEnv) return rb.skip('deploy', `${rb.env} is not protected: no approval needed`);
  await rb.checkpoint('deploy', `deploy ${what}; schema_migration has ${found.schema.count} rows`);
}

async function retag(rb: Deploy, found: Found): Promise<void> {
  const p = rb.params;
  await rb.change(
    'retag',
    `tag ${p.repository}:${p.commit} (${found.images.commitDigest}) as ${p.prodTag}`,
    () => aws.moveTag({ aws: p.aws, repository: p.repository, tag: p.prodTag, digest: found.images.commitDigest }),
    {
      // Runs on a failed canary (unless the schema moved: see watchCanary), and on a cancel.
      undo: {
        summary: `tag ${found.previousCommit ?? found.images.prodDigest} as ${p.prodTag} again, redeploy ${p.service} and wait until it serves`,
        run: () => restorePrevious(rb, found),
      },
      detail: (r) =>
        r.moved
          ? `${p.prodTag} now points at ${found.images.commitDigest}`
          : `${p.prodTag} already pointed at ${found.images.commitDigest}`,
      dryResult: { moved: false },
    },
  );
}

async function redeploy(rb: Deploy): Promise<void> {
  const p = rb.params;
  await rb.change(
    'redeploy',
    `force a new deployment of ${p.service} (one task at a time: minimum healthy 100%, maximum 125%; ECS circuit-breaker rollback off)`,
    () => aws.forceNewDeployment(serviceOf(p)),
  );
}

async function watchCanary(rb: Deploy, found: Found): Promise<CanaryResult> {
  const p = rb.params;
  try {
    return await rb.change(
      'watch-canary',
      `watch the new tasks of ${p.service} running ${found.images.commitDigest}: done when all ${found.service.desiredCount} serve; stop at failure ${p.toleratedFailures + 1}`,
      () =>
        watchActivities(p.healthTimeoutMs).watchCanary({
          ...serviceOf(p),
          container: p.container,
          digest: found.images.commitDigest,
          targetGroupArn: found.targetGroupArn,
          toleratedFailures: p.toleratedFailures,
          deadline: new Date(Date.now() + p.healthTimeoutMs).toISOString(),
        }),
      {
        detail: (c) =>
          `${c.newTaskArns.length} tasks run ${p.commit}; never fewer than ${c.minHealthy} serving; ${c.failures.length} failures`,
        dryResult: { newTaskArns: [], failures: [], minHealthy: found.service.desiredCount, polls: 0 },
      },
    );
  } catch (err) {
    // Putting the old image back is only safe on the schema it ran with.
    const now = await aws.readSchemaMigrations({ db: { aws: p.aws, login: p.database } });
    const added = now.versions.filter((v) => !found.schema.versions.includes(v));
    if (added.length)
      rb.commit(
        `schema_migration changed during the deploy (${added.join(', ')}), so ${found.previousCommit ?? 'the old image'} may not fit it: roll forward with a fixed commit`,
      );
    throw err;
  }
}

async function readSchema(rb: Deploy): Promise<SchemaMigrations> {
  const p = rb.params;
  return rb.read(
    'read-schema',
    'read schema_migration after the deploy',
    () => aws.readSchemaMigrations({ db: { aws: p.aws, login: p.database } }),
    { detail: (s) => `${s.count} rows, newest ${s.newest ?? 'none'}` },
  );
}

async function setFreeze(rb: Deploy, found: Found): Promise<DeployFreeze | null> {
  const p = rb.params;
  if (p.mode === 'deploy') {
    rb.skip('set-freeze', p.fixesCommit ? `deploy of a fix for ${p.fixesCommit}: the freeze is lifted` : 'deploy mode');
    return null;
  }
  const freeze: DeployFreeze = {
    badCommit: found.previousCommit ?? found.images.prodDigest,
    since: new Date().toISOString(),
    byRun: workflowInfo().workflowId,
  };
  await rb.change(
    'set-freeze',
    `freeze deploys of ${p.service} on ${rb.env} until one names fixesCommit=${freeze.badCommit}`,
    () => Promise.resolve(freeze),
    {
      detail: (f) => `deploys frozen since ${f.since}: the next deploy must set fixesCommit=${f.badCommit}`,
      dryResult: freeze,
    },
  );
  // The seed: after a rollback "we also need to let everyone know to stop them from deploying newer commits".
  if (!rb.dryRun && patched(ANNOUNCE_FREEZE)) {
    await rb.notify('frozen', {
      detail:
        `${p.commit} is prod again on ${p.service} (${rb.env}); ${freeze.badCommit} was rolled back. Do not deploy newer commits: ` +
        `the next deploy must fix ${freeze.badCommit} and say so with --set fixesCommit=${freeze.badCommit}`,
    });
  }
  return freeze;
}

/** Runs started before this marker set the freeze without announcing it. */
const ANNOUNCE_FREEZE = 'announce-deploy-freeze';

/** The undo of a deploy: the previous image back under the tag, and serving again. */
async function restorePrevious(rb: Deploy, found: Found): Promise<void> {
  const p = rb.params;
  await aws.moveTag({ aws: p.aws, repository: p.repository, tag: p.prodTag, digest: found.images.prodDigest });
  await aws.forceNewDeployment(serviceOf(p));
  await watchActivities(p.healthTimeoutMs).watchCanary({
    ...serviceOf(p),
    container: p.container,
    digest: found.images.prodDigest,
    targetGroupArn: found.targetGroupArn,
    toleratedFailures: 1,
    deadline: new Date(Date.now() + p.healthTimeoutMs).toISOString(),
  });
}

function serviceOf(p: ProdTagDeployParams) {
  return { aws: p.aws, cluster: p.cluster, service: p.service };
}

/** Reads everything the run depends on and refuses, changing nothing, what it must not do. */
async function preflight(rb: Deploy): Promise<Found> {
  const p = rb.params;
  const [images, service, schema, holders, deploys] = await Promise.all([
    aws.inspectImages({ aws: p.aws, repository: p.repository, commit: p.commit, prodTag: p.prodTag }),
    aws.inspectDeployService(serviceOf(p)),
    aws.readSchemaMigrations({ db: { aws: p.aws, login: p.database } }),
    aws.findServiceHolders({ env: rb.env, service: p.service, except: workflowInfo().workflowId }),
    aws.findSucceededDeploys({ env: rb.env, service: p.service }),
  ]);
  refuseIfHeld(holders, 'service', p.service);
  refuseIf(!images.commitDigest, 'commit', `${p.repository} has no image tagged ${p.commit}`);
  refuseIf(!images.prodDigest, 'prodTag', `${p.repository} has no image tagged ${p.prodTag}`);
  refuseIf(images.commitDigest === images.prodDigest, 'commit', `${p.commit} (${images.commitDigest}) is already ${p.prodTag}`);
  const wanted = `${images.repositoryUri}:${p.prodTag}`;
  const image = service.images.find((i) => i.container === p.container)?.image;
  refuseIf(
    image !== wanted,
    'service',
    `${p.container} of ${service.taskDefinitionArn.split('/').at(-1)} runs ${image ?? 'nothing'}, not ${wanted}: moving the tag would deploy nothing`,
  );
  refuseIf(service.deploymentInProgress, 'service', `a deployment of ${p.service} is in progress; start once it has finished`);
  refuseIf(!service.targetGroupArns.length, 'service', `${p.service} has no target group: the canary's health could not be watched`);
  const previousCommit = images.prodTags.find((t) => t !== p.prodTag) ?? null;
  const basis = p.mode === 'rollback' ? rollbackBasis(rb, images.commitDigest!, schema, deploys) : null;
  if (p.mode === 'deploy') checkFreeze(rb, deploys);
  return {
    images: images as Found['images'],
    previousCommit,
    service,
    targetGroupArn: service.targetGroupArns[0]!,
    schema,
    basis,
  };
}

/** A deploy during a freeze must name the commit it fixes. */
function checkFreeze(rb: Deploy, deploys: SucceededDeploy[]): void {
  const p = rb.params;
  const last = deploys[0]?.result as ProdTagDeployResult | undefined;
  const freeze = last?.mode === 'rollback' ? last.freeze : null;
  if (!freeze) return;
  refuseIf(
    p.fixesCommit !== freeze.badCommit,
    'fixesCommit',
    `deploys of ${p.service} on ${rb.env} are frozen since ${freeze.since} (${freeze.byRun} rolled back ${freeze.badCommit}); ` +
      `deploy a commit that fixes it with fixesCommit=${freeze.badCommit}`,
  );
}

/**
 * A rollback is safe only onto the schema the target image ran with: the
 * newest run that made its digest prod recorded schema_migration then.
 */
function rollbackBasis(rb: Deploy, digest: string, schema: SchemaMigrations, deploys: SucceededDeploy[]): ProdTagDeployResult['basis'] {
  const p = rb.params;
  const record = deploys.find((d) => (d.result as ProdTagDeployResult | null)?.digest === digest);
  if (!record) {
    refuseIf(
      !p.rollbackOverrideReason,
      'commit',
      `no prod-tag-deploy run on ${rb.env} recorded ${p.commit} (${digest}) as prod, so whether a migration ran since is unknown; ` +
        'refusing (set rollbackOverrideReason to roll back anyway; it is recorded)',
    );
    return { override: p.rollbackOverrideReason! };
  }
  const then = new Set((record.result as ProdTagDeployResult).schemaAfter.versions);
  const added = schema.versions.filter((v) => !then.has(v));
  refuseIf(
    added.length > 0,
    'commit',
    `${added.length} migration(s) ran since ${p.commit} was prod (${record.workflowId}, ${record.closedAt}): ${added.join(', ')}; ` +
      `${p.commit} may not fit the schema: roll forward with a fix instead`,
  );
  return { workflowId: record.workflowId, closedAt: record.closedAt };
}

function preflightDetail(p: ProdTagDeployParams) {
  return (f: Found) =>
    `${p.commit} is ${f.images.commitDigest}; prod is ${f.previousCommit ?? '?'} (${f.images.prodDigest}); ${f.service.desiredCount} tasks; ` +
    `schema_migration ${f.schema.count} rows${f.basis ? `; ${'override' in f.basis ? `override: ${f.basis.override}` : `${p.commit} was prod after ${f.basis.workflowId}`}` : ''}`;
}
