/** bucket-swap's rules, as pure functions: bucket names, sizes, copy verification, the Terraform plan guard. */
import assert from 'node:assert/strict';
import { bucketNameProblem } from '../../src/activities/bucket-names.js';
import { copyMismatch, plannedParts } from '../../src/activities/s3-objects.js';
import { isWithin, planProblems } from '../../src/terraform-plan.js';
import { parseBytes } from '../../src/bytes.js';

describe('bucket-swap rules', () => {
  it('knows S3 bucket names', () => {
    for (const good of ['abc', 'sandbox-uploads-v2', 'my.bucket.name', 'a'.repeat(63)]) assert.equal(bucketNameProblem(good), null, good);
    for (const bad of ['ab', 'a'.repeat(64), 'Upper', 'under_score', '-dash', 'dot.', 'two..dots', '192.168.5.4', 'xn--punycode', 'name-s3alias']) {
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
    assert.deepEqual(planProblems({ changes: [{ address: target, actions: ['create'] }], outputs: { bucket_name: 'new' } }, { ...only, expectOutput: { name: 'bucket_name', value: 'new' } }), []);
    assert.deepEqual(
      planProblems({ changes: [{ address: target, actions: ['create'] }, { address: 'aws_kms_key.k', actions: ['delete', 'create'] }, { address: 'aws_s3_bucket.logs', actions: ['delete'] }], outputs: {} }, only),
      [`it would replace aws_kms_key.k, destroy aws_s3_bucket.logs, not only ${target}`],
    );
    assert.deepEqual(planProblems({ changes: [], outputs: {} }, only), [`it does not create ${target} (check the resource address)`]);
    assert.match(planProblems({ changes: [{ address: target, actions: ['create'] }], outputs: { bucket_name: 'other' } }, { ...only, expectOutput: { name: 'bucket_name', value: 'new' } })[0] ?? '', /output bucket_name would be 'other', not 'new'/);
    assert.equal(isWithin('module.site.aws_s3_bucket.static[0]', 'module.site'), true);
    assert.equal(isWithin('aws_s3_bucket.static_logs', target), false);
  });
});
