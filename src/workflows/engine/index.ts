export { definePlan, type Plan } from './plan.js';
export { runRunbook, Runbook, type Undo, type StepOptions, type ChangeOptions } from './runbook.js';
export { stepActivities } from './activities.js';
export { describeError, refuseIf, refuseIfHeld } from './errors.js';
