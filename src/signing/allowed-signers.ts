/**
 * OpenSSH allowed-signers files (ssh-keygen(1), "ALLOWED SIGNERS"; the format
 * git uses for SSH commit signing): `principals [options] keytype base64-key [comment]`.
 * Parsed strictly, so a typo is a config error naming the file and line rather
 * than a signer who silently cannot approve.
 */
import { readFileSync } from 'node:fs';
import { KEY_TYPES, SIGNING_NAMESPACE, fingerprint, readPublicKey, SignatureError } from './sshsig.js';

export interface AllowedSigner {
  /** Who this key signs as; the first is the identity recorded (startedBy, `by`). */
  principals: string[];
  keyType: string;
  /** The public key blob, base64 as in the file. */
  key: string;
  /** `namespaces="…"`: when set, the key signs only in these. */
  namespaces?: string[];
  /** `valid-after` / `valid-before` as ISO times. */
  validAfter?: string;
  validBefore?: string;
  /** Where the line is, for messages. */
  line: number;
}

export class SignersFileError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    message: string,
  ) {
    super(`signers file ${file}${line ? ` line ${line}` : ''}: ${message}`);
  }
}

export function loadAllowedSigners(file: string): AllowedSigner[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SignersFileError(file, undefined, `cannot read it: ${(err as Error).message}`);
  }
  const signers = parseAllowedSigners(text, file);
  if (!signers.length)
    throw new SignersFileError(file, undefined, 'lists no signers (expected lines like `alice@example.com ssh-ed25519 AAAA…`)');
  return signers;
}

export function parseAllowedSigners(text: string, file = '<signers>'): AllowedSigner[] {
  const signers: AllowedSigner[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (!trimmed || trimmed.startsWith('#')) return;
    const fail = (message: string): never => {
      throw new SignersFileError(file, line, message);
    };
    const tokens = tokenize(trimmed) ?? fail('unbalanced double quote');
    const [principalField, ...rest] = tokens;
    const principals = principalField!
      .replace(/^"|"$/g, '')
      .split(',')
      .map((p) => p.trim());
    for (const principal of principals) {
      if (!principal) fail('empty principal');
      if (/[*?!]/.test(principal))
        fail(`principal '${principal}' is a pattern; list each signer by name, since the name becomes the recorded identity`);
    }
    // Options come before the key type; anything shaped like a key type is one (supported or not).
    const hasOptions = rest.length > 0 && !/^(ssh-|ecdsa-|sk-)/.test(rest[0]!);
    const options = hasOptions ? parseOptions(rest.shift()!, fail) : {};
    const [keyType, key] = rest;
    if (!keyType || !key) fail('expected `principals [options] keytype base64-key`');
    if (!(KEY_TYPES as readonly string[]).includes(keyType!)) fail(`key type '${keyType}' is not supported (${KEY_TYPES.join(', ')})`);
    const blob = Buffer.from(key!, 'base64');
    if (blob.toString('base64') !== key) fail('the key is not valid base64');
    try {
      const parsed = readPublicKey(blob);
      if (parsed.type !== keyType) fail(`the key is a ${parsed.type} key, but the line says ${keyType}`);
    } catch (err) {
      if (err instanceof SignersFileError) throw err;
      fail((err as SignatureError).message);
    }
    signers.push({ principals, keyType: keyType!, key: key!, ...options, line });
  });
  return signers;
}

/** The signers whose key made this signature and who may sign in our namespace at `now`. */
export function signersOf(signers: readonly AllowedSigner[], publicKey: Buffer, now: Date): { usable: AllowedSigner[]; why?: string } {
  const key = publicKey.toString('base64');
  const matching = signers.filter((s) => s.key === key);
  if (!matching.length) return { usable: [], why: `key ${fingerprint(publicKey)} is not in the signers file` };
  const usable = matching.filter(
    (s) =>
      (!s.namespaces || s.namespaces.includes(SIGNING_NAMESPACE)) &&
      (!s.validAfter || now >= new Date(s.validAfter)) &&
      (!s.validBefore || now < new Date(s.validBefore)),
  );
  if (!usable.length)
    return {
      usable,
      why: `key ${fingerprint(publicKey)} may not sign ${SIGNING_NAMESPACE} now (namespaces or validity in the signers file)`,
    };
  return { usable };
}

function parseOptions(field: string, fail: (message: string) => never): Pick<AllowedSigner, 'namespaces' | 'validAfter' | 'validBefore'> {
  const out: Pick<AllowedSigner, 'namespaces' | 'validAfter' | 'validBefore'> = {};
  for (const option of splitOutsideQuotes(field, ',')) {
    const eq = option.indexOf('=');
    const name = (eq < 0 ? option : option.slice(0, eq)).toLowerCase();
    const value = eq < 0 ? undefined : option.slice(eq + 1).replace(/^"|"$/g, '');
    if (name === 'cert-authority') fail('cert-authority lines are not supported; list each signer key');
    else if (name === 'namespaces' && value) out.namespaces = value.split(',').map((n) => n.trim());
    else if ((name === 'valid-after' || name === 'valid-before') && value) {
      const at = sshTime(value) ?? fail(`${name}="${value}" is not a time (YYYYMMDD[HHMM[SS]][Z])`);
      out[name === 'valid-after' ? 'validAfter' : 'validBefore'] = at;
    } else fail(`unknown option '${option}' (namespaces, valid-after, valid-before)`);
  }
  return out;
}

/** `YYYYMMDD[HHMM[SS]][Z]`, local time unless Z, as ssh-keygen reads it. */
function sshTime(value: string): string | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z)?$/i.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h = '00', mi = '00', s = '00', z] = m;
  const at = z ? new Date(Date.UTC(+y!, +mo! - 1, +d!, +h, +mi, +s)) : new Date(+y!, +mo! - 1, +d!, +h, +mi, +s);
  return Number.isNaN(at.getTime()) ? undefined : at.toISOString();
}

/** Whitespace-separated tokens; double quotes group (options such as namespaces="a,b"). */
function tokenize(line: string): string[] | undefined {
  const tokens = splitOutsideQuotes(line, ' \t');
  return tokens.every((t) => (t.match(/"/g)?.length ?? 0) % 2 === 0) ? tokens : undefined;
}

function splitOutsideQuotes(text: string, separators: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && separators.includes(ch)) {
      if (current) out.push(current);
      current = '';
    } else current += ch;
  }
  if (current) out.push(current);
  return out;
}
