import { z } from 'zod';

/** Sizes as operators write them: "5GiB", "8 MiB", "512KB", or plain bytes. Binary and decimal units both mean what they say. */
const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

export function parseBytes(text: string | number): number {
  if (typeof text === 'number') {
    if (Number.isSafeInteger(text) && text > 0) return text;
    throw new Error('must be a positive whole number of bytes');
  }
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = UNITS[(match?.[2] || 'b').toLowerCase()];
  if (!match || !unit) throw new Error(`'${text}' is not a size (use e.g. 5GiB, 8MiB, 1048576)`);
  const bytes = Math.round(Number(match[1]) * unit);
  if (bytes <= 0) throw new Error('must be a positive size');
  return bytes;
}

/** A zod schema for such sizes: validated text or number in, bytes out. */
export const byteSizeSchema = z.union([z.string(), z.number()]).transform((value, ctx) => {
  try {
    return parseBytes(value);
  } catch (err) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
    return z.NEVER;
  }
});
