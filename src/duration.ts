import { z } from 'zod';

/** Durations as operators write them in config: "90s", "30m", "24h", "7d", or plain milliseconds. */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string | number): number {
  if (typeof text === 'number') {
    if (Number.isFinite(text) && text > 0) return text;
    throw new Error('must be a positive duration');
  }
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/.exec(text.trim());
  if (!match) throw new Error(`'${text}' is not a duration (use e.g. 90s, 30m, 24h, 7d)`);
  const ms = Number(match[1]) * UNITS[match[2]!]!;
  if (ms <= 0) throw new Error('must be a positive duration');
  return ms;
}

/**
 * A zod schema for such durations: text with a unit in, milliseconds out. A
 * bare number is refused: `--set healthTimeout=90` must not mean 90 ms.
 */
export const durationSchema = z.string().transform((value, ctx) => {
  try {
    return parseDuration(value);
  } catch (err) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
    return z.NEVER;
  }
});
