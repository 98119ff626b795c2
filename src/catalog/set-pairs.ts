/**
 * `--set key=value` pairs: dotted keys reach into objects and lists, values are
 * JSON when they parse as JSON and text otherwise. The keys come from a
 * command line, so they must never reach `Object.prototype` (`__proto__.x=1`
 * would otherwise add `x` to every object in the CLI).
 */
import { InputError } from './errors.js';

/** Key segments that lead to an object's prototype instead of one of its fields. */
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype']);
const INDEX = /^(0|[1-9]\d*)$/;

/** Applies each pair to `target` in order, so a later pair wins over an earlier one. */
export function applySetPairs(target: Record<string, unknown>, pairs: readonly string[]): void {
  for (const pair of pairs) applySetPair(target, pair);
}

export function applySetPair(target: Record<string, unknown>, pair: string): void {
  const { path, value } = parseSetPair(pair);
  let node: Record<string, unknown> | unknown[] = target;
  for (const [i, key] of path.entries()) {
    const last = i === path.length - 1;
    const index = slot(node, key, path.slice(0, i), pair);
    if (last) {
      (node as Record<string | number, unknown>)[index] = value;
      break;
    }
    const existing: unknown = (node as Record<string | number, unknown>)[index];
    const child: Record<string, unknown> | unknown[] =
      isContainer(existing) && Object.hasOwn(node, index) ? existing : INDEX.test(path[i + 1]!) ? [] : {};
    (node as Record<string | number, unknown>)[index] = child;
    node = child;
  }
}

export function parseSetPair(pair: string): { path: string[]; value: unknown } {
  const eq = pair.indexOf('=');
  if (eq <= 0) throw new InputError(`--set ${pair}: expected key=value`);
  const path = pair.slice(0, eq).split('.');
  for (const segment of path) {
    if (!segment) throw new InputError(`--set ${pair}: the key has an empty segment (write a.b=1, not a..b=1)`);
    if (FORBIDDEN_SEGMENTS.has(segment)) throw forbidden(pair, segment);
  }
  return { path, value: parseValue(pair, pair.slice(eq + 1)) };
}

/** Where `key` goes in `node`: a field of an object, or an index of a list that leaves no gap. */
function slot(node: Record<string, unknown> | unknown[], key: string, parents: string[], pair: string): string | number {
  if (!Array.isArray(node)) return key;
  const where = parents.join('.');
  if (!INDEX.test(key))
    throw new InputError(`--set ${pair}: ${where} is a list, so the key after it must be an index (${where}.0), not '${key}'`);
  const index = Number(key);
  if (index > node.length)
    throw new InputError(`--set ${pair}: ${where} has ${node.length} item(s), so the next index is ${node.length}, not ${index}`);
  return index;
}

function isContainer(value: unknown): value is Record<string, unknown> | unknown[] {
  return typeof value === 'object' && value !== null;
}

/** JSON when it parses (`2`, `true`, `{"a":1}`, `["x"]`), text otherwise; JSON objects get the same key rule. */
function parseValue(pair: string, raw: string): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return raw;
  }
  rejectForbiddenKeys(parsed, pair);
  return parsed;
}

function rejectForbiddenKeys(value: unknown, pair: string): void {
  if (!isContainer(value)) return;
  for (const [key, child] of Object.entries(value)) {
    if (FORBIDDEN_SEGMENTS.has(key)) throw forbidden(pair, key);
    rejectForbiddenKeys(child, pair);
  }
}

function forbidden(pair: string, key: string): InputError {
  return new InputError(
    `--set ${pair}: '${key}' is not allowed as a key (__proto__, constructor and prototype would reach into every object)`,
  );
}
