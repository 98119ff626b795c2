/** The runbook registry: built-in runbooks plus those plugins add. */
import type { RunbookDefinition } from './definition.js';
import { UsageError } from '../cli/errors.js';
import { rollingRestartRunbook } from './rolling-restart.js';
import { regionDataUpdateRunbook } from './region-data-update.js';
import { bucketSwapRunbook } from './bucket-swap.js';
import { dbMigrationRunbook } from './db-migration.js';
import { terraformApplyRunbook } from './terraform-apply.js';

export const builtinRunbooks: RunbookDefinition[] = [rollingRestartRunbook, regionDataUpdateRunbook, bucketSwapRunbook, dbMigrationRunbook, terraformApplyRunbook];

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
    const definition = this.byName.get(name);
    if (!definition) throw new UsageError(`unknown runbook '${name}' (known: ${[...this.byName.keys()].join(', ') || 'none'})`);
    return definition;
  }
}
