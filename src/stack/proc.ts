/**
 * Is a process, or a process group, still running? Zombies do not count: when
 * our parent dies, our own exited children are reparented to PID 1, and in
 * containers PID 1 often never reaps them, so `kill(pid, 0)` alone would report
 * them alive forever.
 */
import { readdirSync, readFileSync } from 'node:fs';

interface ProcStat {
  state: string;
  pgrp: number;
}

/** True while `pid` exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  if (process.platform !== 'linux') return signalReaches(pid);
  const stat = readStat(String(pid));
  return stat !== undefined && stat.state !== 'Z';
}

/** True while any non-zombie process is left in process group `pgid`. */
export function groupAlive(pgid: number): boolean {
  if (process.platform !== 'linux') return signalReaches(-pgid);
  return readdirSync('/proc').some((entry) => {
    if (!/^\d+$/.test(entry)) return false;
    const stat = readStat(entry);
    return stat !== undefined && stat.pgrp === pgid && stat.state !== 'Z';
  });
}

/** Sends `signal`; false when there was nobody (left) to receive it. */
export function sendSignal(target: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(target, signal);
    return true;
  } catch {
    return false;
  }
}

function signalReaches(target: number): boolean {
  return sendSignal(target, 0);
}

function readStat(pid: string): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid pgrp ...": comm may itself contain spaces and parentheses.
  const [state, , pgrp] = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return state === undefined || pgrp === undefined ? undefined : { state, pgrp: Number(pgrp) };
}
