/**
 * The seeded sandbox as the tests see it, whichever process seeded it.
 *
 * The sandbox's simulators (ECS services, one-off tasks, service images, the
 * migrations catalog they read) live in the process that seeded it: the
 * e2e runner when lanes share one stack, else the mocha process itself. They
 * must run exactly once per stack (two schedulers would both start tasks), so
 * a lane does not get its own: it gets the sandbox's data, and calls the few
 * methods that change simulator state over a loopback HTTP endpoint the
 * seeding process serves. The methods are async in both cases, so a test
 * awaits the change before it starts the run that depends on it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Sandbox } from '../../src/stack/sandbox/index.js';
import { instanceDatabaseUrl } from '../../src/stack/sandbox/db.js';
import type { EcsSimulatorSettings } from '../../src/stack/sandbox/ecs-simulator.js';
import type { OneOffTaskSettings } from '../../src/stack/sandbox/one-off-tasks.js';
import type { AppMigration } from '../../src/stack/sandbox/app-migrations.js';

/** Every sandbox method a test may call that runs in the seeding process. */
const REMOTE_METHODS = [
  'ecs.configure',
  'migrations.tasks.configure',
  'migrations.catalog.add',
  'migrations.catalog.remove',
  'deploys.images.markBad',
  'deploys.images.migrateOnStart',
  'db.seedAppDatabase',
  'regions.addRegion',
  'regions.addNewData',
  'regions.putObject',
] as const;
type RemoteMethod = (typeof REMOTE_METHODS)[number];

/** The sandbox's data: JSON of its plain objects (simulators, clients and functions left out). */
export type SandboxSnapshot = Record<string, unknown>;

export interface TestSandbox {
  environment: Sandbox['environment'];
  workerEnv: Sandbox['workerEnv'];
  terraform: Omit<NonNullable<Sandbox['terraform']>, 'stop'> | undefined;
  regions: Sandbox['regions'];
  db: Omit<Sandbox['db'], 'stop'>;
  migrations: Omit<Sandbox['migrations'], 'tasks' | 'catalog'> & {
    tasks: { configure(settings: OneOffTaskSettings): Promise<void> };
    catalog: { add(tag: string, migration: AppMigration): Promise<void>; remove(tag: string, version: string): Promise<void> };
  };
  deploys: Omit<Sandbox['deploys'], 'images'> & {
    images: { markBad(digest: string, bad?: boolean): Promise<void>; migrateOnStart(digest: string, on?: boolean): Promise<void> };
  };
  ecs: { configure(settings: EcsSimulatorSettings): Promise<void> };
}

export function snapshotOf(sandbox: Sandbox): SandboxSnapshot {
  const plain = (value: unknown) => {
    if (typeof value === 'function') return undefined;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
    const proto = Object.getPrototypeOf(value) as unknown;
    return proto === Object.prototype || proto === null ? value : undefined;
  };
  return JSON.parse(JSON.stringify(sandbox, (_key, value: unknown) => plain(value))) as SandboxSnapshot;
}

function invoke(sandbox: Sandbox, method: RemoteMethod, args: unknown[]): unknown {
  const path = method.split('.');
  const owner = path.slice(0, -1).reduce<Record<string, unknown>>((at, key) => at[key] as Record<string, unknown>, sandbox as never);
  const fn = owner[path.at(-1)!] as (...a: unknown[]) => unknown;
  return fn.apply(owner, args);
}

/** The test view: the snapshot's data, with each remote method calling `call`. */
function view(
  snapshot: SandboxSnapshot,
  postgresUrl: string,
  call: (method: RemoteMethod, args: unknown[]) => Promise<unknown>,
): TestSandbox {
  const out = structuredClone(snapshot) as Record<string, Record<string, unknown>>;
  for (const method of REMOTE_METHODS) {
    const path = method.split('.');
    let at: Record<string, unknown> = out;
    for (const key of path.slice(0, -1)) at = (at[key] ??= {}) as Record<string, unknown>;
    at[path.at(-1)!] = (...args: unknown[]) => call(method, args);
  }
  out.db!.databaseUrl = (instance: string) => instanceDatabaseUrl(postgresUrl, instance);
  return out as unknown as TestSandbox;
}

/** In the seeding process: the same view, calling the sandbox directly. */
export function localSandbox(sandbox: Sandbox, postgresUrl: string): TestSandbox {
  return view(snapshotOf(sandbox), postgresUrl, (method, args) => Promise.resolve(invoke(sandbox, method, args)));
}

/** In a lane: the view of the sandbox that `controlUrl` (from serveSandbox) serves. */
export function remoteSandbox(snapshot: SandboxSnapshot, postgresUrl: string, controlUrl: string): TestSandbox {
  return view(snapshot, postgresUrl, async (method, args) => {
    const response = await fetch(controlUrl, { method: 'POST', body: JSON.stringify({ method, args }) });
    const body = (await response.json()) as { result?: unknown; error?: string };
    if (!response.ok) throw new Error(`sandbox ${method} failed in the seeding process: ${body.error}`);
    return body.result;
  });
}

/** In the seeding process: serves the remote methods on 127.0.0.1; resolves to its URL. */
export async function serveSandbox(sandbox: Sandbox): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const reply = (status: number, json: unknown) =>
        response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
      void (async () => {
        const { method, args } = JSON.parse(body) as { method: RemoteMethod; args: unknown[] };
        if (!REMOTE_METHODS.includes(method)) return reply(400, { error: `${method} is not a remote sandbox method` });
        reply(200, { result: (await invoke(sandbox, method, args)) ?? null });
      })().catch((error: unknown) => reply(500, { error: error instanceof Error ? error.message : String(error) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/sandbox`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
