/**
 * S3's naming rules for general purpose buckets, as one pure function shared by
 * the catalog (refuses a bad name before anything starts) and the activities
 * (a run started from the Temporal UI skips the CLI).
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
 */
const RESERVED_PREFIXES = ['xn--', 'sthree-', 'amzn-s3-demo-'];
const RESERVED_SUFFIXES = ['-s3alias', '--ol-s3', '.mrap', '--x-s3', '--table-s3'];

/** Why `name` cannot be a bucket name, or null when it can. */
export function bucketNameProblem(name: string): string | null {
  if (name.length < 3 || name.length > 63) return `'${name}' must be 3 to 63 characters long`;
  if (!/^[a-z0-9.-]+$/.test(name)) return `'${name}' may hold only lowercase letters, digits, dots and hyphens`;
  if (!/^[a-z0-9]/.test(name) || !/[a-z0-9]$/.test(name)) return `'${name}' must begin and end with a letter or digit`;
  if (name.includes('..')) return `'${name}' must not hold two adjacent dots`;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return `'${name}' must not look like an IP address`;
  const prefix = RESERVED_PREFIXES.find((p) => name.startsWith(p));
  if (prefix) return `'${name}' must not begin with '${prefix}' (reserved by S3)`;
  const suffix = RESERVED_SUFFIXES.find((s) => name.endsWith(s));
  if (suffix) return `'${name}' must not end with '${suffix}' (reserved by S3)`;
  return null;
}

/**
 * The source's bucket policy, made to protect the new bucket: every ARN of
 * the old bucket (`arn:<partition>:s3:::old` and `…:::old/…`) names the new
 * one. ARNs of other buckets, even ones whose name begins with the old name,
 * are left alone.
 */
export function rewriteBucketPolicy(policy: string, from: string, to: string): string {
  const escaped = from.replace(/[.]/g, '\\.');
  return policy.replace(new RegExp(`(arn:aws[a-z-]*:s3:::)${escaped}(?=[/"*]|$)`, 'g'), `$1${to}`);
}
