/**
 * OpenSSH signatures (`ssh-keygen -Y sign`, the SSHSIG format of OpenSSH's
 * PROTOCOL.sshsig) verified with node:crypto alone: ed25519, ecdsa-sha2-nistp256/384/521
 * and rsa-sha2-256/512 keys. Nothing here trusts the key inside a signature:
 * callers look it up in their own allowed-signers list (see allowed-signers.ts).
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

/** The namespace every runbook signature is made in (`ssh-keygen -Y sign -n temporal-runbooks`). */
export const SIGNING_NAMESPACE = 'temporal-runbooks';

const MAGIC = Buffer.from('SSHSIG');
const ARMOR = /^-----BEGIN SSH SIGNATURE-----\r?\n([A-Za-z0-9+/=\r\n]+?)\r?\n?-----END SSH SIGNATURE-----\s*$/;

export class SignatureError extends Error {}

export interface SshSignature {
  /** The signer's public key, as an SSH wire blob (what an allowed-signers line holds, base64-decoded). */
  publicKey: Buffer;
  namespace: string;
  hashAlgorithm: 'sha256' | 'sha512';
  /** The signature blob: string algorithm, string signature bytes. */
  signature: Buffer;
}

/** Reads the armored `-----BEGIN SSH SIGNATURE-----` text into its fields; throws a SignatureError saying what is wrong. */
export function parseSshSignature(armored: string): SshSignature {
  const match = ARMOR.exec(armored.trim());
  if (!match) throw new SignatureError('not an SSH signature (expected -----BEGIN SSH SIGNATURE----- … -----END SSH SIGNATURE-----)');
  const blob = Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64');
  const r = new WireReader(blob);
  if (!r.bytes(MAGIC.length).equals(MAGIC)) throw new SignatureError('not an SSHSIG signature (bad magic)');
  const version = r.uint32();
  if (version !== 1) throw new SignatureError(`SSHSIG version ${version} is not supported (only 1)`);
  const publicKey = r.string();
  const namespace = r.string().toString('utf8');
  r.string(); // reserved
  const hashAlgorithm = r.string().toString('utf8');
  if (hashAlgorithm !== 'sha256' && hashAlgorithm !== 'sha512')
    throw new SignatureError(`SSHSIG hash algorithm '${hashAlgorithm}' is not supported (sha256, sha512)`);
  const signature = r.string();
  r.end();
  return { publicKey, namespace, hashAlgorithm, signature };
}

/** Whether the signature is the key's, over this message, in this namespace. */
export function verifySshSignature(sig: SshSignature, message: string | Buffer, namespace = SIGNING_NAMESPACE): boolean {
  if (sig.namespace !== namespace) return false;
  const digest = createHash(sig.hashAlgorithm).update(message).digest();
  // What was signed (PROTOCOL.sshsig): magic, then namespace, reserved, hash algorithm and H(message) as SSH strings.
  const signed = Buffer.concat([MAGIC, sshString(namespace), sshString(''), sshString(sig.hashAlgorithm), sshString(digest)]);
  const r = new WireReader(sig.signature);
  const algorithm = r.string().toString('utf8');
  const bytes = r.string();
  const key = readPublicKey(sig.publicKey);
  switch (algorithm) {
    case 'ssh-ed25519':
      return key.type === 'ssh-ed25519' && verify(null, signed, key.key, bytes);
    case 'rsa-sha2-256':
    case 'rsa-sha2-512':
      return key.type === 'ssh-rsa' && verify(algorithm === 'rsa-sha2-256' ? 'sha256' : 'sha512', signed, key.key, bytes);
    default: {
      const curve = ECDSA_CURVES[algorithm];
      if (!curve || key.type !== algorithm) return false;
      // The signature bytes are mpint r, mpint s; node wants them as fixed-width r||s.
      const rs = new WireReader(bytes);
      const size = curve.size;
      const pair = Buffer.concat([fixedWidth(rs.string(), size), fixedWidth(rs.string(), size)]);
      return verify(curve.hash, signed, { key: key.key, dsaEncoding: 'ieee-p1363' }, pair);
    }
  }
}

const ECDSA_CURVES: Record<string, { crv: string; size: number; hash: string }> = {
  'ecdsa-sha2-nistp256': { crv: 'P-256', size: 32, hash: 'sha256' },
  'ecdsa-sha2-nistp384': { crv: 'P-384', size: 48, hash: 'sha384' },
  'ecdsa-sha2-nistp521': { crv: 'P-521', size: 66, hash: 'sha512' },
};

/** The key types an allowed-signers line may hold. */
export const KEY_TYPES = ['ssh-ed25519', 'ssh-rsa', ...Object.keys(ECDSA_CURVES)] as const;

/** An SSH public key blob as a node KeyObject; throws a SignatureError for anything else. */
export function readPublicKey(blob: Buffer): { type: string; key: KeyObject } {
  try {
    const r = new WireReader(blob);
    const type = r.string().toString('utf8');
    if (type === 'ssh-ed25519') {
      const x = r.string();
      r.end();
      return { type, key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: x.toString('base64url') }, format: 'jwk' }) };
    }
    if (type === 'ssh-rsa') {
      const e = unsigned(r.string());
      const n = unsigned(r.string());
      r.end();
      return { type, key: createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') }, format: 'jwk' }) };
    }
    const curve = ECDSA_CURVES[type];
    if (curve) {
      r.string(); // the curve's name, implied by the type
      const q = r.string();
      r.end();
      if (q[0] !== 4 || q.length !== 1 + 2 * curve.size) throw new SignatureError('unsupported ECDSA point encoding');
      const x = q.subarray(1, 1 + curve.size).toString('base64url');
      const y = q.subarray(1 + curve.size).toString('base64url');
      return { type, key: createPublicKey({ key: { kty: 'EC', crv: curve.crv, x, y }, format: 'jwk' }) };
    }
    throw new SignatureError(`key type '${type}' is not supported (${KEY_TYPES.join(', ')})`);
  } catch (err) {
    if (err instanceof SignatureError) throw err;
    throw new SignatureError(`malformed public key: ${(err as Error).message}`);
  }
}

/** SHA256 fingerprint as ssh-keygen prints it, for messages. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

function sshString(value: string | Buffer): Buffer {
  const data = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  return Buffer.concat([length, data]);
}

/** An mpint without its sign byte. */
function unsigned(mpint: Buffer): Buffer {
  let start = 0;
  while (start < mpint.length - 1 && mpint[start] === 0) start++;
  return mpint.subarray(start);
}

function fixedWidth(mpint: Buffer, size: number): Buffer {
  const value = unsigned(mpint);
  if (value.length > size) throw new SignatureError('malformed ECDSA signature');
  return Buffer.concat([Buffer.alloc(size - value.length), value]);
}

/** The SSH wire format's big-endian lengths and strings, refusing to read past the end. */
class WireReader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}

  bytes(n: number): Buffer {
    if (this.at + n > this.buf.length) throw new SignatureError('truncated SSH data');
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  uint32(): number {
    return this.bytes(4).readUInt32BE(0);
  }

  string(): Buffer {
    return this.bytes(this.uint32());
  }

  end(): void {
    if (this.at !== this.buf.length) throw new SignatureError('trailing bytes after SSH data');
  }
}
