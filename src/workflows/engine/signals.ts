/**
 * Decision signals come from anyone who can reach the Temporal frontend (the
 * CLI, the UI, `temporal workflow signal`), so their payloads are checked here
 * before any rule looks at them. A malformed one becomes a refusal: a handler
 * that throws fails the workflow task, and the run would be wedged at its checkpoint.
 */
import { SIGNAL_LIMITS, type CancelNote, type DecideArgs } from '../../messages.js';

export type ParsedDecision =
  { ok: true; args: DecideArgs } | { ok: false; reason: string; by: string; checkpoint?: string; requestId?: string };

const TEXT_FIELDS = {
  by: SIGNAL_LIMITS.identity,
  checkpoint: SIGNAL_LIMITS.id,
  waitId: SIGNAL_LIMITS.id,
  runId: SIGNAL_LIMITS.id,
  requestId: SIGNAL_LIMITS.id,
  comment: SIGNAL_LIMITS.text,
  reason: SIGNAL_LIMITS.text,
  signature: SIGNAL_LIMITS.signature,
  expiresAt: SIGNAL_LIMITS.id,
} as const;

type TextField = keyof typeof TEXT_FIELDS;

/** Checks the shape of an approve/reject payload: an object whose known fields are strings within their limits. */
export function parseDecision(raw: unknown, decision: DecideArgs['decision']): ParsedDecision {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return {
      ok: false,
      reason: `malformed ${signalName(decision)} signal: expected a JSON object such as {"checkpoint": "…", "by": "…"}`,
      by: '(unknown)',
    };
  }
  const payload = raw as Record<string, unknown>;
  const text: Partial<Record<TextField, string>> = {};
  const problems: string[] = [];
  for (const [field, limit] of Object.entries(TEXT_FIELDS) as [TextField, number][]) {
    const value = payload[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string') problems.push(`${field} must be a string, not ${Array.isArray(value) ? 'an array' : typeof value}`);
    else if (value.length > limit) problems.push(`${field} is ${value.length} characters, at most ${limit} are accepted`);
    else text[field] = value;
  }
  if (problems.length) {
    return {
      ok: false,
      reason: `malformed ${signalName(decision)} signal: ${problems.join('; ')}`,
      by: shorten(payload.by),
      ...(text.checkpoint ? { checkpoint: text.checkpoint } : {}),
      ...(text.requestId ? { requestId: text.requestId } : {}),
    };
  }
  const binding = {
    by: text.by ?? '',
    ...(text.checkpoint ? { checkpoint: text.checkpoint } : {}),
    ...(text.waitId ? { waitId: text.waitId } : {}),
    ...(text.runId ? { runId: text.runId } : {}),
    ...(text.requestId ? { requestId: text.requestId } : {}),
    ...(text.signature ? { signature: text.signature } : {}),
    ...(text.expiresAt ? { expiresAt: text.expiresAt } : {}),
  };
  const args: DecideArgs =
    decision === 'approved'
      ? { decision, ...binding, ...(text.comment ? { comment: text.comment } : {}) }
      : { decision, ...binding, reason: text.reason ?? '' };
  return { ok: true, args };
}

/** A cancel note is advisory (the cancellation itself is Temporal's); a malformed one is ignored. */
export function parseCancelNote(raw: unknown): CancelNote | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const { by, reason } = raw as Record<string, unknown>;
  if (typeof by !== 'string' || !by.trim() || by.length > SIGNAL_LIMITS.identity) return null;
  if (reason !== undefined && (typeof reason !== 'string' || reason.length > SIGNAL_LIMITS.text)) return null;
  return { by: by.trim(), ...(reason ? { reason } : {}) };
}

function signalName(decision: DecideArgs['decision']): string {
  return decision === 'approved' ? 'approve' : 'reject';
}

/** Enough of a bad `by` to recognise the sender in the refusal list, never the whole payload. */
function shorten(value: unknown): string {
  if (typeof value === 'string')
    return value.length > SIGNAL_LIMITS.identity ? `${value.slice(0, 40)}… (${value.length} characters)` : value || '(nobody)';
  if (value === undefined || value === null) return '(nobody)';
  return `(a ${Array.isArray(value) ? 'array' : typeof value})`;
}
