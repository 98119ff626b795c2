/**
 * Seed 002: "the deployment process for the API should also be stopped
 * because it touches the database". The transition into the deploy stage is
 * disabled before anything changes and enabled again however the run ends: the
 * undo outlives the point of no return. A transition an operator disabled is
 * left disabled.
 */
import { workflowInfo } from '@temporalio/workflow';
import { quick, type Migration } from './context.js';

type Pipeline = { name: string; stage: string };

export async function pauseDeploys(m: Migration): Promise<void> {
  const { rb, p } = m;
  const pipeline = p.deployPipeline;
  if (!m.pausesDeploys || !pipeline) {
    rb.skip('pause-deploys', pipeline ? 'started before deploys were paused' : 'no deploy pipeline configured (deployPipeline)');
    return rb.skip('resume-deploys', 'nothing paused');
  }
  await rb.change(
    'pause-deploys',
    `disable the transition into stage ${pipeline.stage} of pipeline ${pipeline.name}, so no deploy reaches the database during the run`,
    () => quick.pauseStageTransition({ ...deployTransition(m, pipeline), holder: deployHolder() }),
    {
      // Registered before it runs, and kept past the point of no return: the pipeline runs again however the run ends.
      undo: {
        summary: `enable the transition into ${pipeline.stage} of ${pipeline.name} again (unless an operator had disabled it)`,
        run: () => quick.resumeStageTransition({ ...deployTransition(m, pipeline), holder: deployHolder() }),
        keepAfterCommit: true,
      },
      detail: (r) =>
        r.found === 'operator'
          ? `already disabled by ${r.state.lastChangedBy ?? 'an operator'} ("${r.state.disabledReason ?? ''}"): left disabled, not re-enabled after the run`
          : `transition into ${pipeline.stage} disabled${r.found === 'runs' ? ' (with the other runbook runs that hold it)' : ''}: "${r.state.disabledReason ?? ''}"`,
      dryResult: { found: 'enabled', state: { enabled: false } },
    },
  );
}

export async function resumeDeploys(m: Migration): Promise<void> {
  const { rb, p } = m;
  const pipeline = p.deployPipeline;
  if (!m.pausesDeploys || !pipeline) return;
  await rb.change(
    'resume-deploys',
    `enable the transition into stage ${pipeline.stage} of pipeline ${pipeline.name} again (unless an operator had disabled it)`,
    () => quick.resumeStageTransition({ ...deployTransition(m, pipeline), holder: deployHolder() }),
    {
      detail: (r) =>
        r.outcome === 'enabled'
          ? `transition into ${pipeline.stage} enabled: deploys flow again`
          : r.outcome === 'still-held'
            ? `other runbook runs still hold ${pipeline.name}: "${r.state.disabledReason ?? ''}"`
            : r.state.enabled
              ? `already enabled (by ${r.state.lastChangedBy ?? 'someone'})`
              : `left disabled as an operator set it: "${r.state.disabledReason ?? ''}"`,
      dryResult: { outcome: 'enabled', state: { enabled: true } },
    },
  );
}

export function deployTransition(m: Migration, pipeline: Pipeline) {
  return { aws: m.p.aws, pipeline: pipeline.name, stage: pipeline.stage, field: 'deployPipeline' };
}

function deployHolder() {
  return { runbook: 'db-migration', runId: workflowInfo().runId };
}
