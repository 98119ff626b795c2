/** The clients activities are built from, as the worker process provides them. */
import type { ActivityDeps } from './index.js';

export function createDeps(): ActivityDeps {
  return {};
}
