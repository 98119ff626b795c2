/**
 * The bucket-swap bench counts every tool's requests from versitygw's access
 * log (src/stack/fast-s3.ts). Lines as versitygw v1.8.0 writes them: S3's
 * server access log format, operations named s3_<Operation>.
 */
import assert from 'node:assert/strict';
import { countAccessLog } from '../../src/stack/fast-s3.js';

const line = (operation: string, key: string, status: number, error = '-') =>
  `bench dst0 [02/December/2026:20:12:13 +0000] 127.0.0.1 bench 5EET63X0WNCN1AFY s3_${operation} ${key} /dst0/${key} ${status} ${error} ` +
  `220 0 1 1 - - - MmBH26A/mJyrsD5ORpunfyGaBBmenysfCsVTn6A8DP3ioUVckC5xONip7A27x4YaTLcX2M6oljEGrGe//YaWopE= SigV4 - AuthHeader ` +
  `s3.us-east-1.amazonaws.com - arn:aws:s3:::/dst0/${key} Yes`;

describe('requests counted from the S3 server access log', () => {
  it('counts answered requests by operation, and errors by operation, status and code', () => {
    const log = [
      line('ListObjectsV2', '-', 200),
      line('CopyObject', 'k/0', 200),
      line('CopyObject', 'k/1', 200),
      line('CopyObject', 'k/2', 503, 'SlowDown'),
      line('HeadObject', 'k/3', 404, 'NoSuchKey'),
      '',
    ].join('\n');
    assert.deepEqual(countAccessLog(log), {
      byOperation: { ListObjectsV2: 1, CopyObject: 3, HeadObject: 1 },
      errors: { 'CopyObject 503 SlowDown': 1, 'HeadObject 404 NoSuchKey': 1 },
    });
  });

  it('ignores what is not a request line (the log-start banner, blank lines)', () => {
    assert.deepEqual(countAccessLog('log starts 2026-12-02 20:12:13\n\n'), { byOperation: {}, errors: {} });
  });
});
