/**
 * The end-to-end tier in concurrent lanes on one stack (`npm run test:e2e`).
 *
 * Starts the local stack, seeds the sandbox and bundles the workflows once,
 * then runs the e2e files in N lanes (RUNBOOK_E2E_LANES, default 3), each a
 * `mocha` process over its files that attaches to that stack (RUNBOOK_TEST_STACK)
 * with its own Temporal namespace, and so its own worker, test-gates, ledger
 * and config (test/setup.ts). Files that touch the same sandbox resources are
 * grouped below and a group never spans lanes, so they never run at once.
 * Each lane's output is printed whole when it ends, then a summary; the exit
 * code is non-zero if any lane failed. The stack is stopped on every path.
 *
 * Arguments: file names (e.g. `engine bucket-swap`) to run only those files' groups.
 */
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../src/stack/index.js';
import { SHARED_STACK_ENV, startSharedStack, type SharedStack } from './helpers/shared-stack.js';

interface Group {
  files: string[];
  why: string;
}

/** Files that share sandbox resources; each group runs in one lane, in this order. */
const GROUPS: Group[] = [
  {
    // In the serial run's order; each file puts the simulator back to its defaults when done (SIMULATOR_DEFAULTS).
    files: ['ecs-migration', 'prod-tag-deploy', 'region-data-update', 'rolling-restart', 'trust-boundary'],
    why:
      "the ECS simulator's settings are global (health delay, failing tasks); the `app` service is restarted by rolling-restart, " +
      "region-data-update's child run and trust-boundary; prod-tag-deploy restarts `web` through the same auto scaling group; " +
      "prod-tag-deploy and ecs-migration share the migrations catalog and the app database's schema_migrations",
  },
  {
    files: ['db-migration', 'db-migration-online', 'db-migration-pipeline'],
    why: 'the SANDBOX_SOURCE instance (and its default new instance), its `app-writer` service and the deploy pipeline',
  },
  { files: ['dev', 'stack'], why: 'each starts a stack of its own; `runbook dev` binds port 8233' },
  {
    files: ['bucket-swap', 'terraform-apply'],
    why:
      "each counts requests with moto's recorder, which is one for all of moto (starting it forgets what another file " +
      "recorded); bucket-swap: its own buckets and writer services; terraform-apply: the sandbox's Terraform directory and workspaces",
  },
  { files: ['engine'], why: 'fixture runbooks only' },
  { files: ['bucket-swap-copy'], why: 'buckets of its own, through its own proxy' },
  { files: ['credentials'], why: 'dry runs and refusals only: changes nothing shared' },
];

/**
 * Seconds each file took in a lane (the `e2e-file-times` lines of the full run of 2026-12-02, 3 lanes, 2 cores at
 * load 11-14); balances the lanes. region-data-update ran right after rolling-restart there (a 40 s health delay left).
 */
const MEASURED_SECONDS: Record<string, number> = {
  'bucket-swap': 904,
  'bucket-swap-copy': 22,
  credentials: 19,
  'db-migration': 705,
  'db-migration-online': 207,
  'db-migration-pipeline': 270,
  dev: 116,
  'ecs-migration': 189,
  engine: 239,
  'prod-tag-deploy': 192,
  'region-data-update': 779,
  'rolling-restart': 219,
  stack: 51,
  'terraform-apply': 473,
  'trust-boundary': 63,
};

const laneCount = Number(process.env.RUNBOOK_E2E_LANES ?? 3);
if (!Number.isInteger(laneCount) || laneCount < 1) {
  console.error(`RUNBOOK_E2E_LANES must be a whole number of lanes, at least 1 (got ${process.env.RUNBOOK_E2E_LANES})`);
  process.exit(2);
}

const distTest = join(projectRoot, 'dist', 'test');
const present = readdirSync(distTest)
  .filter((name) => name.endsWith('.test.js'))
  .map((name) => name.slice(0, -'.test.js'.length));
const only = process.argv.slice(2);
for (const name of only) {
  if (!present.includes(name)) {
    console.error(`no e2e file ${name}: choose among ${present.join(', ')}`);
    process.exit(2);
  }
}
const grouped = new Set(GROUPS.flatMap((g) => g.files));
// A new file not yet placed runs alone in its own group: safe, if maybe unbalanced.
const groups = [...GROUPS, ...present.filter((f) => !grouped.has(f)).map((f) => ({ files: [f], why: 'not yet grouped' }))]
  .map((g) => ({ ...g, files: g.files.filter((f) => present.includes(f) && (only.length === 0 || only.includes(f))) }))
  .filter((g) => g.files.length > 0);

/** Longest group first into the lane with the least work so far (unknown files count 60 s). */
function assign(): string[][] {
  const cost = (g: Group) => g.files.reduce((sum, f) => sum + (MEASURED_SECONDS[f] ?? 60), 0);
  const lanes = Array.from({ length: Math.min(laneCount, groups.length) }, () => ({ files: [] as string[], seconds: 0 }));
  for (const group of [...groups].sort((a, b) => cost(b) - cost(a))) {
    const lane = lanes.reduce((least, l) => (l.seconds < least.seconds ? l : least));
    lane.files.push(...group.files);
    lane.seconds += cost(group);
  }
  return lanes.map((l) => l.files);
}

interface LaneResult {
  lane: number;
  files: string[];
  seconds: number;
  exitCode: number;
  passing: number;
  failing: number;
  fileSeconds: Record<string, number>;
}

const running = new Set<ResultPromise>();
/** Every lane's process group, ended again at exit in case a lane left a process (a worker) behind. */
const laneGroups: number[] = [];
let stack: SharedStack | undefined;
const dir = mkdtempSync(join(tmpdir(), 'runbook-e2e-'));

async function runLane(lane: number, files: string[], stackFile: string): Promise<LaneResult> {
  const started = Date.now();
  const child = execa(
    process.execPath,
    [
      join(projectRoot, 'node_modules', 'mocha', 'bin', 'mocha.js'),
      '--config',
      '.mocharc.json',
      ...files.map((f) => `dist/test/${f}.test.js`),
    ],
    {
      cwd: projectRoot,
      env: { [SHARED_STACK_ENV]: stackFile, TEMPORAL_NAMESPACE: `lane-${lane}` },
      all: true,
      reject: false,
      // Its own process group, so an interrupt can end the lane's worker and CLIs with it.
      detached: true,
    },
  );
  running.add(child);
  laneGroups.push(child.pid!);
  const result = await child;
  running.delete(child);
  const output = result.all ?? '';
  const seconds = (Date.now() - started) / 1000;
  console.log(`\n===== lane ${lane} (${files.join(', ')}): ${seconds.toFixed(0)} s, exit ${result.exitCode} =====\n${output}`);
  const count = (word: string) => Number(new RegExp(`(\\d+) ${word}`).exec(output)?.[1] ?? 0);
  const times = /^e2e-file-times (.*)$/m.exec(output)?.[1];
  return {
    lane,
    files,
    seconds,
    exitCode: result.exitCode ?? 1,
    passing: count('passing'),
    failing: count('failing'),
    fileSeconds: times ? (JSON.parse(times) as Record<string, number>) : {},
  };
}

function endLanes(signal: NodeJS.Signals, groups: Iterable<number> = [...running].map((c) => c.pid!)): void {
  for (const group of groups) {
    try {
      process.kill(-group, signal);
    } catch {
      // already gone
    }
  }
}

async function main(): Promise<number> {
  const lanes = assign();
  const started = Date.now();
  stack = await startSharedStack(dir, { namespaces: lanes.map((_, i) => `lane-${i + 1}`), serve: true });
  const stackFile = join(dir, 'stack.json');
  writeFileSync(stackFile, JSON.stringify(stack.info));
  if (interrupted) return 130;
  console.log(`stack ready in ${((Date.now() - started) / 1000).toFixed(0)} s; ${lanes.length} lanes:`);
  lanes.forEach((files, i) => console.log(`  lane ${i + 1}: ${files.join(', ')}`));
  const results = await Promise.all(lanes.map((files, i) => runLane(i + 1, files, stackFile)));
  console.log('\n===== e2e summary =====');
  for (const r of results) {
    const perFile = Object.entries(r.fileSeconds)
      .map(([f, s]) => `${f} ${s} s`)
      .join(', ');
    console.log(`lane ${r.lane}: ${r.passing} passing, ${r.failing} failing, ${r.seconds.toFixed(0)} s, exit ${r.exitCode} (${perFile})`);
  }
  console.log(`total: ${((Date.now() - started) / 1000).toFixed(0)} s including the stack's start`);
  return results.some((r) => r.exitCode !== 0) ? 1 : 0;
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${signal}: ending the lanes and stopping the stack`);
    endLanes('SIGTERM');
    // A lane that ignores SIGTERM is killed; the stack is stopped in main's finally either way.
    setTimeout(() => endLanes('SIGKILL'), 5_000).unref();
  });
}

let code = 1;
try {
  code = await main();
} catch (error) {
  console.error(error);
} finally {
  endLanes('SIGKILL', laneGroups);
  await stack?.stop();
  if (!process.env.RUNBOOK_KEEP_TEST_DIR) rmSync(dir, { recursive: true, force: true });
}
process.exit(interrupted ? 130 : code);
