/**
 * Clock-skew correction on the lean CopyObject path (s3-copy-request.ts), as
 * the SDK does it: an error answer's Date header sets the client's clock
 * offset, the error says the request is worth re-sending, and the next request
 * is signed with the server's time. A local HTTP server plays S3 with a clock
 * an hour ahead.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { S3Client } from '@aws-sdk/client-s3';
import { leanCopyRequests } from '../../src/activities/s3-copy-request.js';
import { copySource } from '../../src/activities/s3-objects.js';

const HOUR = 3_600_000;
const SKEWED_BODY =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time and the current time is too large.</Message></Error>';

/** x-amz-date (20261202T101500Z) as milliseconds. */
function amzDate(value: string): number {
  return Date.parse(value.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
}

describe('CopyObject without the SDK pipeline: clock skew', () => {
  let server: http.Server;
  let endpoint: string;
  const seen: number[] = [];

  before(async () => {
    // Refuses any request signed more than 15 minutes away from its clock (an hour ahead of ours), as S3 does.
    server = http.createServer((req, res) => {
      const serverNow = Date.now() + HOUR;
      const signedAt = amzDate(String(req.headers['x-amz-date']));
      seen.push(signedAt);
      req.resume();
      const date = new Date(serverNow).toUTCString();
      if (Math.abs(serverNow - signedAt) > 15 * 60_000) {
        res.writeHead(403, { date, 'content-type': 'application/xml' });
        res.end(SKEWED_BODY);
        return;
      }
      res.writeHead(200, { date, 'content-type': 'application/xml' });
      res.end('<CopyObjectResult><ETag>"abc"</ETag></CopyObjectResult>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("takes the server's Date from a refused request, marks it worth re-sending, and signs the next with the server's time", async () => {
    const s3 = new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    });
    const lean = (await leanCopyRequests(s3, 'target', new AbortController().signal))!;
    const request = { bucket: 'target', key: 'a/b.txt', copySource: copySource('source', 'a/b.txt') };

    const refused = await lean.copyObject(request).then(
      () => assert.fail('the first request, signed with our clock, is refused'),
      (err: unknown) => err as { name: string; $metadata: { httpStatusCode: number; clockSkewCorrected?: boolean } },
    );
    assert.equal(refused.name, 'RequestTimeTooSkewed');
    assert.equal(refused.$metadata.httpStatusCode, 403);
    assert.equal(refused.$metadata.clockSkewCorrected, true, 'the copier re-sends errors marked so');
    const offset = (s3.config as unknown as { systemClockOffset: number }).systemClockOffset;
    assert.ok(Math.abs(offset - HOUR) < 5_000, `the client's clock offset is the server's (${offset} ms)`);

    const copied = await lean.copyObject(request);
    assert.equal(copied.$metadata.httpStatusCode, 200);
    assert.equal(seen.length, 2);
    assert.ok(Math.abs(seen[1]! - (Date.now() + HOUR)) < 5_000, "the re-sent request was signed with the server's time");
    await lean.close();
    s3.destroy();
  });
});
