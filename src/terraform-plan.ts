/**
 * The plan guard: what a saved Terraform plan may do, as pure functions of its
 * summary. One guard for every runbook that applies a plan (bucket-swap,
 * db-migration, terraform-apply); pure, so workflows run it too.
 */

export interface PlannedChange {
  address: string;
  /** Terraform's actions: ["create"], ["update"], ["delete"], ["delete","create"] (replace), ["no-op"], ... */
  actions: string[];
}

/** What a saved plan does, without any attribute value (those may be secret). */
export interface PlanSummary {
  changes: PlannedChange[];
  /** Non-sensitive outputs whose planned value is known. */
  outputs: Record<string, unknown>;
}

export interface PlanRules {
  /** Addresses (or modules, or resources with all their instances) the plan may destroy or replace; nothing else. */
  allow: string[];
  /** Addresses the plan must create or change (a targeted plan's targets). */
  require?: string[];
  /** An output the plan must give this value, when the plan knows it already. */
  expectOutput?: { name: string; value: string };
}

export interface PlanCounts {
  create: number;
  update: number;
  /** Destroyed outright. */
  delete: number;
  /** Destroyed and created again. */
  replace: number;
}

/** What is wrong with a plan; empty when the rules accept it. */
export function planProblems(plan: PlanSummary, rules: PlanRules): string[] {
  const problems: string[] = [];
  const destroyed = plan.changes.filter((c) => c.actions.includes('delete') && !rules.allow.some((a) => isWithin(c.address, a)));
  if (destroyed.length) {
    const what = destroyed.map((c) => `${isReplace(c) ? 'replace' : 'destroy'} ${c.address}`).join(', ');
    problems.push(`it would ${what}, not only ${rules.allow.length ? rules.allow.join(', ') : 'what allow lists (nothing)'}`);
  }
  for (const required of rules.require ?? []) {
    if (!plan.changes.some((c) => isWithin(c.address, required) && (c.actions.includes('create') || c.actions.includes('update')))) {
      problems.push(`it does not create ${required} (check the resource address)`);
    }
  }
  const expected = rules.expectOutput;
  if (expected && expected.name in plan.outputs && plan.outputs[expected.name] !== expected.value) {
    problems.push(`output ${expected.name} would be '${String(plan.outputs[expected.name])}', not '${expected.value}'`);
  }
  return problems;
}

/** Whether `address` is `target` or inside it (an instance `target[0]`, or a resource of module `target`). */
export function isWithin(address: string, target: string): boolean {
  return address === target || address.startsWith(`${target}.`) || address.startsWith(`${target}[`);
}

export function isReplace(change: PlannedChange): boolean {
  return change.actions.includes('delete') && change.actions.includes('create');
}

export function planCounts(plan: PlanSummary): PlanCounts {
  const counts: PlanCounts = { create: 0, update: 0, delete: 0, replace: 0 };
  for (const change of plan.changes) {
    if (isReplace(change)) counts.replace++;
    else if (change.actions.includes('create')) counts.create++;
    else if (change.actions.includes('delete')) counts.delete++;
    else if (change.actions.includes('update')) counts.update++;
  }
  return counts;
}

/** "2 to create, 0 to update, 1 to replace, 0 to destroy", Terraform's own words. */
export function describeCounts(counts: PlanCounts): string {
  return `${counts.create} to create, ${counts.update} to update, ${counts.replace} to replace, ${counts.delete} to destroy`;
}

/** "create aws_s3_bucket.a, replace aws_s3_bucket.b", or "no changes". */
export function describeChanges(plan: PlanSummary): string {
  if (!plan.changes.length) return 'no changes';
  return plan.changes
    .map((c) => `${isReplace(c) ? 'replace' : c.actions.includes('delete') ? 'destroy' : c.actions.join('+')} ${c.address}`)
    .join(', ');
}
