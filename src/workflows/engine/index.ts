export { definePlan, type Plan, type StepName, type CheckpointName } from './plan.js';
export {
  runRunbook,
  Runbook,
  type RunbookOf,
  type Undo,
  type StepOptions,
  type ChangeOptions,
  type DryRunSkippedReadOptions,
} from './runbook.js';
export { stepActivities } from './activities.js';
export { describeError, refuseIf, refuseIfHeld } from './errors.js';
export { API_RETRY, WAIT_RETRY, TOOL_RETRY } from './retry.js';
