/**
 * The guard: a tiny process between us and one server, so that the server never
 * outlives us. It starts the server in a process group of its own and stops that
 * whole group as soon as its stdin closes. The parent holds the other end of
 * that pipe, and the kernel closes it however the parent ends (normal exit,
 * signal, even SIGKILL), so one mechanism covers every way of dying.
 *
 * Run as `node guard.js <name>`, with stderr already pointing at the server's
 * log file and the GuardConfig in the environment (see guard-protocol.ts; not
 * in argv, which every local user can read). Reports on stdout, one
 * GuardMessage (JSON) per line.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { GUARD_CONFIG_ENV, type GuardConfig, type GuardMessage } from './guard-protocol.js';
import { groupAlive, sendSignal } from './proc.js';

/** Time stragglers get once the server itself has exited. */
const STRAGGLER_GRACE_MS = 2_000;
/** SIGKILL is not instant either: processes in uninterruptible IO finish it first. */
const AFTER_KILL_WAIT_MS = 5_000;
const POLL_MS = 50;

const config = JSON.parse(process.env[GUARD_CONFIG_ENV] ?? '') as GuardConfig;

let serverExited = false;
let shuttingDown = false;

// Writes after the parent died fail with EPIPE: cleaning up matters more than reporting.
process.stdout.on('error', () => {});
// A terminal's Ctrl-C reaches the whole foreground group, us included; the parent decides.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => void shutdown());
process.on('SIGHUP', () => void shutdown());

const server = spawn(config.command, config.args, {
  env: config.env,
  cwd: config.cwd,
  uid: config.uid,
  gid: config.gid,
  detached: true, // setsid(): its own process group, out of reach of terminal signals
  stdio: ['ignore', 2, 2],
});

server.once('spawn', () => {
  note(`started ${config.command} as pid ${server.pid}`);
  report({ type: 'started', pid: server.pid! });
});
server.once('error', (error) => {
  if (server.pid !== undefined) return note(`error: ${error.message}`);
  report({ type: 'spawn-failed', message: error.message });
  void shutdown();
});
server.once('exit', (code, signal) => {
  serverExited = true;
  if (!shuttingDown) note(`server exited on its own (code ${code}, signal ${signal})`);
  report({ type: 'exited', code, signal });
  void shutdown();
});

process.stdin.on('end', () => void shutdown());
process.stdin.on('close', () => void shutdown());
process.stdin.on('error', () => void shutdown());
process.stdin.resume();

async function shutdown(): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  if (server.pid !== undefined) await stopGroup(server.pid);
  for (const path of config.removeAfterStop) rmSync(path, { recursive: true, force: true });
  process.exit(0);
}

/** Asks the server to stop, then makes sure nothing of its process group survives. */
async function stopGroup(pgid: number): Promise<void> {
  if (!serverExited) {
    note(`stopping: ${config.stopSignal} to pid ${pgid}`);
    sendSignal(pgid, config.stopSignal);
  }
  const leaderGone = await eventually(() => serverExited, config.graceMs);
  if (await eventually(() => !groupAlive(pgid), leaderGone ? STRAGGLER_GRACE_MS : 0)) return;
  note(`process group ${pgid} still running after ${config.graceMs} ms: sending SIGKILL`);
  sendSignal(-pgid, 'SIGKILL');
  if (!(await eventually(() => !groupAlive(pgid), AFTER_KILL_WAIT_MS))) {
    note(`process group ${pgid} survived SIGKILL; giving up`);
  }
}

async function eventually(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS);
  }
  return true;
}

function report(message: GuardMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function note(line: string): void {
  process.stderr.write(`[guard ${new Date().toISOString()}] ${line}\n`);
}
