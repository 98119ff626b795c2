/**
 * The CLI's side of signing: OpenSSH's own `ssh-keygen -Y sign` makes the
 * signature, with the key from --key, RUNBOOK_SIGNING_KEY, or else the first
 * key in ssh-agent. Private keys never pass through this process.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ConfigError } from '../config.js';
import { SIGNING_NAMESPACE } from './sshsig.js';

export type SigningKey = { kind: 'file'; path: string } | { kind: 'agent'; publicKey: string };

/** How long the CLI's signatures stay valid: long enough for a slow frontend, short enough not to be reusable later. */
export const SIGNATURE_LIFETIME_MS = 10 * 60_000;

/** --key, else RUNBOOK_SIGNING_KEY, else the first key ssh-agent holds; undefined when there is none. */
export async function findSigningKey(flag?: string): Promise<SigningKey | undefined> {
  const path = flag ?? process.env.RUNBOOK_SIGNING_KEY;
  if (path) {
    checkKeyFile(path);
    return { kind: 'file', path };
  }
  if (!process.env.SSH_AUTH_SOCK) return undefined;
  const listed = await execa('ssh-add', ['-L'], { reject: false });
  const first = listed.exitCode === 0 ? listed.stdout.split('\n').find((l) => l.trim()) : undefined;
  return first ? { kind: 'agent', publicKey: first.trim() } : undefined;
}

/** An armored SSHSIG signature of `message` in the temporal-runbooks namespace. */
export async function signMessage(key: SigningKey, message: string): Promise<string> {
  const dir = key.kind === 'agent' ? mkdtempSync(join(tmpdir(), 'runbook-sign-')) : undefined;
  try {
    const keyFile = dir ? join(dir, 'agent-key.pub') : (key as { path: string }).path;
    if (dir) writeFileSync(keyFile, `${(key as { publicKey: string }).publicKey}\n`);
    const signed = await execa('ssh-keygen', ['-q', '-Y', 'sign', '-n', SIGNING_NAMESPACE, '-f', keyFile], {
      input: message,
      reject: false,
    });
    if (signed.exitCode !== 0 || !signed.stdout.includes('BEGIN SSH SIGNATURE')) {
      const what =
        key.kind === 'file' ? `key file ${key.path}` : `the ssh-agent key ${key.publicKey.split(' ').slice(0, 2).join(' ').slice(0, 40)}…`;
      throw new ConfigError(`cannot sign with ${what}: ${signed.stderr.trim() || `ssh-keygen exited ${signed.exitCode}`}`);
    }
    return signed.stdout.trim();
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

export function expiresAt(now = Date.now()): string {
  return new Date(now + SIGNATURE_LIFETIME_MS).toISOString();
}

/** A readable OpenSSH (or PEM) private key, so a wrong path or a public key fails here with the file and line. */
function checkKeyFile(path: string): void {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`key file ${path}: cannot read it: ${(err as Error).message}`);
  }
  const first = text.split(/\r?\n/, 1)[0]?.trim() ?? '';
  if (!/^-----BEGIN (OPENSSH |RSA |EC )?PRIVATE KEY-----$/.test(first)) {
    const hint = /^(ssh-|ecdsa-)/.test(first) ? ' (this is a public key; pass the private key file, or load it into ssh-agent)' : '';
    throw new ConfigError(`key file ${path} line 1: not an OpenSSH private key, expected -----BEGIN OPENSSH PRIVATE KEY-----${hint}`);
  }
}
