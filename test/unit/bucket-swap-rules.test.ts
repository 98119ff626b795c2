/** bucket-swap's rules, as pure functions: bucket names, sizes, copy verification, the Terraform plan guard. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { bucketNameProblem, rewriteBucketPolicy } from '../../src/activities/bucket-names.js';
import { namesBucket } from '../../src/activities/bucket-users.js';
import { missingSettings, type BucketSettings } from '../../src/activities/s3-bucket-settings.js';
import { etagOf } from '../../src/activities/s3-content.js';
import { copyMismatch, plannedParts } from '../../src/activities/s3-objects.js';
import { bucketSwapRunbook } from '../../src/catalog/bucket-swap.js';
import { InputError } from '../../src/catalog/errors.js';
import { buildStartRequest } from '../../src/catalog/inputs.js';
import { environment, parseConfig } from '../../src/config.js';
import { isWithin, planProblems } from '../../src/terraform-plan.js';
import { parseBytes } from '../../src/bytes.js';

describe('bucket-swap rules', () => {
  it('knows S3 bucket names', () => {
    for (const good of ['abc', 'sandbox-uploads-v2', 'my.bucket.name', 'a'.repeat(63)]) assert.equal(bucketNameProblem(good), null, good);
    for (const bad of [
      'ab',
      'a'.repeat(64),
      'Upper',
      'under_score',
      '-dash',
      'dot.',
      'two..dots',
      '192.168.5.4',
      'xn--punycode',
      'name-s3alias',
    ]) {
      assert.notEqual(bucketNameProblem(bad), null, bad);
    }
  });

  it('reads sizes as operators write them', () => {
    assert.equal(parseBytes('5GiB'), 5 * 2 ** 30);
    assert.equal(parseBytes('8 MiB'), 8 * 2 ** 20);
    assert.equal(parseBytes('1MB'), 1_000_000);
    assert.equal(parseBytes(1024), 1024);
    assert.throws(() => parseBytes('lots'), /not a size/);
  });

  it('judges single-part copies by ETag and multipart copies by size and part count', () => {
    const plan = { multipartThreshold: 8 * 2 ** 20, partSize: 5 * 2 ** 20 };
    const small = { key: 'k', size: 10, etag: '"abc"' };
    assert.equal(copyMismatch(small, { ...small }, plan), null);
    assert.match(copyMismatch(small, { ...small, etag: '"def"' }, plan) ?? '', /ETag "abc" in the source, "def" in the copy/);
    assert.match(copyMismatch(small, { ...small, size: 11 }, plan) ?? '', /size 10 in the source, 11 in the copy/);
    const large = { key: 'big', size: 12 * 2 ** 20, etag: '"whole-object-md5"' };
    assert.equal(plannedParts(large.size, plan), 3);
    assert.equal(copyMismatch(large, { ...large, etag: '"x-3"' }, plan), null);
    assert.match(copyMismatch(large, { ...large, etag: '"x"' }, plan) ?? '', /expected a 3-part copy/);
    // A multipart source copied whole: S3 gives the copy a fresh single-part ETag.
    const multipartSource = { key: 'm', size: 100, etag: '"abc-2"' };
    assert.equal(copyMismatch(multipartSource, { ...multipartSource, etag: '"fresh"' }, plan), null);
  });

  it('refuses plans that destroy or replace anything but the target', () => {
    const target = 'aws_s3_bucket.static';
    const only = { allow: [target], require: [target] };
    assert.deepEqual(
      planProblems(
        { changes: [{ address: target, actions: ['create'] }], outputs: { bucket_name: 'new' } },
        { ...only, expectOutput: { name: 'bucket_name', value: 'new' } },
      ),
      [],
    );
    assert.deepEqual(
      planProblems(
        {
          changes: [
            { address: target, actions: ['create'] },
            { address: 'aws_kms_key.k', actions: ['delete', 'create'] },
            { address: 'aws_s3_bucket.logs', actions: ['delete'] },
          ],
          outputs: {},
        },
        only,
      ),
      [`it would replace aws_kms_key.k, destroy aws_s3_bucket.logs, not only ${target}`],
    );
    assert.deepEqual(planProblems({ changes: [], outputs: {} }, only), [`it does not create ${target} (check the resource address)`]);
    assert.match(
      planProblems(
        { changes: [{ address: target, actions: ['create'] }], outputs: { bucket_name: 'other' } },
        { ...only, expectOutput: { name: 'bucket_name', value: 'new' } },
      )[0] ?? '',
      /output bucket_name would be 'other', not 'new'/,
    );
    assert.equal(isWithin('module.site.aws_s3_bucket.static[0]', 'module.site'), true);
    assert.equal(isWithin('aws_s3_bucket.static_logs', target), false);
  });

  it("rewrites every ARN of the old bucket in its policy, and no other bucket's", () => {
    const policy = JSON.stringify({
      Statement: [
        {
          Effect: 'Deny',
          Resource: ['arn:aws:s3:::old-site', 'arn:aws:s3:::old-site/*'],
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        },
        { Effect: 'Allow', Resource: 'arn:aws-cn:s3:::old-site/uploads/*' },
        { Effect: 'Allow', Resource: ['arn:aws:s3:::old-site-logs/*', 'arn:aws:s3:::other/old-site/*'] },
      ],
    });
    const rewritten = JSON.parse(rewriteBucketPolicy(policy, 'old-site', 'new-site')) as { Statement: { Resource: string | string[] }[] };
    assert.deepEqual(
      rewritten.Statement.map((s) => s.Resource),
      [
        ['arn:aws:s3:::new-site', 'arn:aws:s3:::new-site/*'],
        'arn:aws-cn:s3:::new-site/uploads/*',
        ['arn:aws:s3:::old-site-logs/*', 'arn:aws:s3:::other/old-site/*'],
      ],
    );
    // Dots in a name are literal, not "any character".
    assert.equal(rewriteBucketPolicy('"arn:aws:s3:::a.b/*" "arn:aws:s3:::axb/*"', 'a.b', 'c'), '"arn:aws:s3:::c/*" "arn:aws:s3:::axb/*"');
  });

  it('finds a bucket named in a container variable, as a name, URL or ARN, and not a longer name', () => {
    for (const value of ['site', 's3://site', 's3://site/uploads/', 'arn:aws:s3:::site', 'https://s3.amazonaws.com/site/x'])
      assert.equal(namesBucket(value, 'site'), true, value);
    for (const value of ['site-v2', 's3://site-v2/x', 'website', 'mysite']) assert.equal(namesBucket(value, 'site'), false, value);
  });

  it('computes the ETag a copy must have from the source bytes: MD5 whole, or MD5 of part MD5s', async () => {
    const bytes = Buffer.alloc(12 * 2 ** 20 + 17, 7);
    bytes.write('different start');
    const md5 = (b: Buffer) => createHash('md5').update(b).digest();
    // Fed in odd-sized chunks: part boundaries fall inside chunks.
    const chunks = async function* () {
      for (let at = 0; at < bytes.length; at += 1_000_003) yield bytes.subarray(at, at + 1_000_003);
    };
    assert.equal(await etagOf(chunks(), undefined), md5(bytes).toString('hex'));
    const part = 5 * 2 ** 20;
    const parts = [bytes.subarray(0, part), bytes.subarray(part, 2 * part), bytes.subarray(2 * part)];
    assert.equal(
      await etagOf(chunks(), part),
      `${createHash('md5')
        .update(Buffer.concat(parts.map(md5)))
        .digest('hex')}-3`,
    );
    const changed = Buffer.from(bytes);
    changed[2 * part + 5] = 8;
    assert.notEqual(await etagOf([changed], part), await etagOf([bytes], part), 'one changed byte in the last part changes the ETag');
  });

  it('names what a bucket made by Terraform lacks compared with the old one', () => {
    const old: BucketSettings = {
      region: 'us-east-1',
      versioning: 'Enabled',
      tags: [],
      unreadable: [],
      policy: '{}',
      cors: [{ AllowedMethods: ['GET'], AllowedOrigins: ['*'] }],
      publicAccessBlock: { BlockPublicAcls: true, BlockPublicPolicy: true },
    };
    const made: BucketSettings = {
      region: 'us-east-1',
      versioning: 'Off',
      tags: [],
      unreadable: [],
      cors: [],
      publicAccessBlock: { BlockPublicAcls: true },
    };
    const missing = missingSettings(old, { ...made, cors: undefined });
    assert.deepEqual(
      missing.map((m) => m.split(':')[0]),
      ['versioning', 'public access block BlockPublicPolicy', 'bucket policy', 'CORS rules'],
    );
    assert.deepEqual(missingSettings(old, old), []);
  });

  describe('terraform.dir', () => {
    const config = parseConfig(`
environments:
  sandbox:
    aws: { region: us-east-1, endpoint: http://127.0.0.1:5000 }
    approvals: { approvers: ['*'], allowSelfApproval: true }
    terraform: { dirs: { infra: /srv/infra } }
`);
    const sandbox = environment(config, 'sandbox');
    const run = { startedBy: 'alice', dryRun: false };
    const terraformMode = (dir: string) => [
      'source=old-site',
      'target=new-site',
      'mode=terraform',
      `terraform.dir=${dir}`,
      'terraform.address=aws_s3_bucket.static',
    ];

    it("is a name from the environment's terraform.dirs, prepared into its path", () => {
      const request = buildStartRequest(bucketSwapRunbook, sandbox, { sets: terraformMode('infra') }, run);
      const prepared = bucketSwapRunbook.prepare!(bucketSwapRunbook.params.parse(request.input.params), sandbox) as {
        terraform: { dir: string; dirName: string };
      };
      assert.equal(prepared.terraform.dir, '/srv/infra');
      assert.equal(prepared.terraform.dirName, 'infra');
    });

    it('is never a free path, nor a name the environment does not allow', () => {
      for (const [dir, rule] of [
        ['/tmp/evil', /terraform\.dir: must be the name of a Terraform directory/],
        ['../infra', /terraform\.dir: must be the name of a Terraform directory/],
        ['other', /terraform\.dir: 'other' is not a Terraform directory of sandbox \(allowed: infra\)/],
      ] as const) {
        assert.throws(
          () => buildStartRequest(bucketSwapRunbook, sandbox, { sets: terraformMode(dir) }, run),
          (err: Error) => err instanceof InputError && rule.test(err.message),
          dir,
        );
      }
    });
  });
});
