/**
 * Runbooks from outside this package: a plugin module exports its catalog
 * entries, the path of its workflows module and its activities. The CLI reads
 * the catalog; the worker bundles the workflows and registers the activities.
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ActivityDeps } from './activities/index.js';
import type { RunbookDefinition } from './catalog/definition.js';

export interface RunbookPlugin {
  runbooks: RunbookDefinition[];
  /** Absolute path of a module that exports the plugin's workflow functions. */
  workflowsPath?: string;
  activities?(deps: ActivityDeps): Record<string, (...args: never[]) => Promise<unknown>>;
}

/** Plugin paths from the config plus `RUNBOOK_PLUGINS` (separated by the OS path delimiter). */
export function pluginPaths(fromConfig: string[] = [], configDir = process.cwd()): string[] {
  const fromEnv = (process.env.RUNBOOK_PLUGINS ?? '').split(/[:;]/).filter(Boolean);
  return [...fromConfig.map((p) => (isAbsolute(p) ? p : resolve(configDir, p))), ...fromEnv.map((p) => resolve(p))];
}

export async function loadPlugins(paths: string[]): Promise<RunbookPlugin[]> {
  return Promise.all(
    paths.map(async (path) => {
      const module = (await import(pathToFileURL(path).href)) as { default?: RunbookPlugin; plugin?: RunbookPlugin };
      const plugin = module.plugin ?? module.default;
      if (!plugin || !Array.isArray(plugin.runbooks)) throw new Error(`plugin ${path} exports no \`plugin\` with a runbooks list`);
      return plugin;
    }),
  );
}
