/** The runbook registry: built-in runbooks plus those plugins add. */
import type { RunbookDefinition } from './definition.js';
import { InputError } from './errors.js';
import { rollingRestartRunbook } from './rolling-restart.js';
import { regionDataUpdateRunbook } from './region-data-update.js';
import { bucketSwapRunbook } from './bucket-swap.js';
import { dbMigrationRunbook } from './db-migration.js';
import { ecsMigrationRunbook } from './ecs-migration.js';
import { prodTagDeployRunbook } from './prod-tag-deploy.js';
import { terraformApplyRunbook } from './terraform-apply.js';

export const builtinRunbooks: RunbookDefinition[] = [
  rollingRestartRunbook,
  regionDataUpdateRunbook,
  bucketSwapRunbook,
  dbMigrationRunbook,
  ecsMigrationRunbook,
  prodTagDeployRunbook,
  terraformApplyRunbook,
];

export class Catalog {
  private readonly byName = new Map<string, RunbookDefinition>();

  constructor(definitions: RunbookDefinition[]) {
    for (const definition of definitions) {
      if (this.byName.has(definition.name)) throw new Error(`two runbooks are named '${definition.name}'`);
      this.byName.set(definition.name, definition);
    }
  }

  list(): RunbookDefinition[] {
    return [...this.byName.values()];
  }

  get(name: string): RunbookDefinition {
    const definition = this.byName.has(name) ? this.byName.get(name) : undefined;
    if (!definition) throw new InputError(`unknown runbook '${name}' (known: ${[...this.byName.keys()].join(', ') || 'none'})`);
    return definition;
  }
}
