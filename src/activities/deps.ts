/** The clients activities are built from, as the worker process provides them. */
import type { ActivityDeps } from './index.js';
import { awsClients } from './aws.js';

export function createDeps(): ActivityDeps {
  return { aws: awsClients };
}
