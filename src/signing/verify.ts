/**
 * The worker's check of a signed start or decision: the signature is an SSHSIG
 * over the canonical message the worker builds from what it is asked to do (so
 * a signature made for another run, wait, decision or comment does not verify),
 * by a key in the worker's own signers file, and not expired. The verified
 * principal is the identity; a claimed name that is not the key's is refused.
 */
import { normalizeIdentity } from '../workflows/engine/approvals.js';
import type { AllowedSigner } from './allowed-signers.js';
import { signersOf } from './allowed-signers.js';
import { decisionMessage, startMessage, type DecisionClaim, type StartClaim } from './canonical.js';
import { fingerprint, parseSshSignature, SignatureError, verifySshSignature } from './sshsig.js';

/** How far ahead a signature may expire: a signature is a one-off, not a standing token. */
export const MAX_SIGNATURE_LIFETIME_MS = 60 * 60_000;

export interface Signed {
  /** Armored `-----BEGIN SSH SIGNATURE-----` text. */
  signature?: string;
  /** Who the sender says they are (optional: the key decides). */
  by?: string;
}

/** The principal who signed this start; throws a SignatureError saying why not. */
export function verifyStart(signers: readonly AllowedSigner[], claim: StartClaim & Signed, now = new Date()): string {
  return verifySigned(signers, claim, startMessage(claim), now, 'start');
}

/** The principal who signed this decision; throws a SignatureError saying why not. */
export function verifyDecision(signers: readonly AllowedSigner[], claim: DecisionClaim & Signed, now = new Date()): string {
  return verifySigned(signers, claim, decisionMessage(claim), now, 'decision');
}

function verifySigned(
  signers: readonly AllowedSigner[],
  claim: Signed & { expiresAt: string },
  message: string,
  now: Date,
  what: string,
): string {
  if (!claim.signature)
    throw new SignatureError(
      `unsigned ${what}: this environment requires ${what}s signed with ssh-keygen -Y sign -n temporal-runbooks (runbook … --key <file>)`,
    );
  checkExpiry(claim.expiresAt, now);
  const sig = parseSshSignature(claim.signature);
  const { usable, why } = signersOf(signers, sig.publicKey, now);
  if (!usable.length) throw new SignatureError(`${what} signature refused: ${why}`);
  if (!verifySshSignature(sig, message)) {
    throw new SignatureError(
      `${what} signature by key ${fingerprint(sig.publicKey)} does not verify over this ${what} (signed for another run, wait, decision, comment or input, or in another namespace)`,
    );
  }
  const principals = usable.flatMap((s) => s.principals);
  const claimed = claim.by ? normalizeIdentity(claim.by) : '';
  if (claimed && !principals.some((p) => normalizeIdentity(p) === claimed)) {
    throw new SignatureError(`${what} claims to be by '${claim.by}' but is signed with the key of ${principals.join(', ')}`);
  }
  const principal = claimed ? principals.find((p) => normalizeIdentity(p) === claimed)! : principals[0]!;
  return normalizeIdentity(principal);
}

function checkExpiry(expiresAt: string | undefined, now: Date): void {
  const at = expiresAt ? Date.parse(expiresAt) : NaN;
  if (!expiresAt || Number.isNaN(at) || new Date(at).toISOString() !== expiresAt)
    throw new SignatureError('the signed expiresAt must be an ISO-8601 UTC time (e.g. 2026-01-02T03:04:05.000Z)');
  if (at <= now.getTime()) throw new SignatureError(`the signature expired at ${expiresAt}`);
  if (at - now.getTime() > MAX_SIGNATURE_LIFETIME_MS)
    throw new SignatureError(`the signature expires at ${expiresAt}, more than ${MAX_SIGNATURE_LIFETIME_MS / 60_000} minutes ahead`);
}
