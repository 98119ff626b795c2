/**
 * The CopyObject request sent without the SDK's pipeline (s3-copy-request.ts)
 * must be the request the SDK would send: same host, path (key encoding),
 * copy headers, and a SigV4 signature over them. The SDK's request is taken
 * from its own pipeline, stopped at the HTTP handler; the signature is then
 * recomputed with the SDK's signing date and signed headers and compared.
 */
import assert from 'node:assert/strict';
import { CopyObjectCommand, S3Client, type StorageClass } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { bucketEndpoint, keyPath, serviceError, signedCopyObject } from '../../src/activities/s3-copy-request.js';
import { copySource } from '../../src/activities/s3-objects.js';

interface Captured {
  method: string;
  hostname: string;
  port?: number;
  path: string;
  headers: Record<string, string>;
}

const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

/** The request the SDK sends for this CopyObject, caught at the HTTP handler. */
async function sdkRequest(s3: S3Client, bucket: string, key: string, source: string, storageClass?: StorageClass): Promise<Captured> {
  let captured: Captured | undefined;
  s3.middlewareStack.add(
    () => async (args) => {
      captured = args.request as Captured;
      throw new Error('captured');
    },
    { step: 'finalizeRequest', priority: 'low', name: 'capture' },
  );
  await assert.rejects(
    s3.send(
      new CopyObjectCommand({
        Bucket: bucket,
        Key: key,
        CopySource: source,
        MetadataDirective: 'COPY',
        TaggingDirective: 'COPY',
        ...(storageClass ? { StorageClass: storageClass } : {}),
      }),
    ),
    /captured/,
  );
  s3.middlewareStack.remove('capture');
  return captured!;
}

/** The SDK's own SigV4 signer, configured as the client signs S3 requests. */
async function sdkSigner(s3: S3Client): Promise<SignatureV4> {
  const config = s3.config as unknown as { credentials: never; sha256: never; region: () => Promise<string> };
  return new SignatureV4({
    credentials: config.credentials,
    sha256: config.sha256,
    region: await config.region(),
    service: 's3',
    uriEscapePath: false,
  });
}

const KEYS = ['plain/key.txt', 'with space/and+plus', "odd!'()*chars/é ü 日本", 'a//double/slash', '~tilde_-.ok', 'percent%20kept'];

const CLIENTS: [string, () => S3Client][] = [
  [
    'a custom endpoint, path-style',
    () => new S3Client({ endpoint: 'http://127.0.0.1:9000', region: 'us-east-1', forcePathStyle: true, credentials }),
  ],
  ['AWS, virtual-hosted', () => new S3Client({ region: 'eu-west-1', credentials })],
  [
    'temporary credentials',
    () => new S3Client({ region: 'us-west-2', credentials: { ...credentials, sessionToken: 'FwoGZXIvYXdzEJr//////////session+token=' } }),
  ],
];

describe('CopyObject without the SDK pipeline', () => {
  for (const [label, client] of CLIENTS) {
    it(`sends the request the SDK sends, signed the same (${label})`, async () => {
      const s3 = client();
      const signer = await sdkSigner(s3);
      for (const key of KEYS) {
        const source = copySource('source-bucket', key);
        const sdk = await sdkRequest(s3, 'target-bucket', key, source, 'STANDARD_IA');
        const endpoint = (await bucketEndpoint(s3, 'target-bucket'))!;
        assert.ok(endpoint, 'plain SigV4 endpoints take the lean path');
        const amzDate = sdk.headers['x-amz-date']!;
        const signingDate = new Date(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
        const ours = await signedCopyObject(
          endpoint,
          { bucket: 'target-bucket', key, copySource: source, storageClass: 'STANDARD_IA' },
          signingDate,
        );
        assert.equal(ours.method, sdk.method);
        // Our request goes to the endpoint's origin.
        assert.equal(endpoint.url.hostname, sdk.hostname, key);
        assert.equal(endpoint.url.port ? Number(endpoint.url.port) : undefined, sdk.port, key);
        assert.equal(ours.path, sdk.path, key);
        for (const header of [
          'x-amz-copy-source',
          'x-amz-metadata-directive',
          'x-amz-tagging-directive',
          'x-amz-storage-class',
          'x-amz-date',
        ])
          assert.equal(ours.headers[header], sdk.headers[header], `${header} of ${key}`);
        // The same signature over the headers the SDK signed: host, path and encoding all agree with the SDK's.
        const sdkAuth = sdk.headers.authorization!;
        const signedHeaders = /SignedHeaders=([^,]+)/.exec(sdkAuth)![1]!.split(';');
        const resigned = await signer.sign(
          {
            ...sdk,
            protocol: endpoint.url.protocol,
            query: (sdk as { query?: Record<string, string> }).query ?? {},
            headers: pick(sdk.headers, signedHeaders),
          },
          { signingDate },
        );
        assert.equal(resigned.headers.authorization, sdkAuth, `the SDK's signature recomputed for ${key}`);
        const ourSigned = /SignedHeaders=([^,]+)/.exec(ours.headers.authorization!)![1]!.split(';');
        const ourResigned = await signer.sign(
          { ...ours, protocol: endpoint.url.protocol, hostname: endpoint.url.hostname, query: {}, headers: pick(ours.headers, ourSigned) },
          { signingDate },
        );
        assert.equal(ourResigned.headers.authorization, ours.headers.authorization);
        assert.ok(ourSigned.includes('host') && ourSigned.includes('x-amz-copy-source') && ourSigned.includes('x-amz-content-sha256'));
        assert.equal(ours.headers['x-amz-security-token'], sdk.headers['x-amz-security-token'], `session token sent for ${key}`);
        assert.equal(ourSigned.includes('x-amz-security-token'), signedHeaders.includes('x-amz-security-token'));
      }
      s3.destroy();
    });
  }

  it('encodes keys per segment as S3 expects (RFC 3986), keeping slashes', () => {
    assert.equal(keyPath("a b/c+d/e!'()*"), 'a%20b/c%2Bd/e%21%27%28%29%2A');
    assert.equal(keyPath('x/y~z_-.'), 'x/y~z_-.');
  });

  it('reports S3 error answers as the SDK does: the code as the name, the status in $metadata', () => {
    const slowDown = serviceError(
      503,
      '<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>r1</RequestId></Error>',
    );
    assert.equal(slowDown.name, 'SlowDown');
    assert.equal(slowDown.message, 'Please reduce your request rate.');
    assert.deepEqual(slowDown.$metadata, { httpStatusCode: 503, attempts: 1, requestId: 'r1' });
    assert.equal(slowDown.$fault, 'server');
    const missing = serviceError(404, '');
    assert.equal(missing.name, 'NotFound');
    assert.equal(missing.$fault, 'client');
    // A copy S3 failed after answering 200 (the error is in the body).
    assert.equal(serviceError(200, '<Error><Code>InternalError</Code><Message>x</Message></Error>').name, 'InternalError');
  });
});

function pick(headers: Record<string, string>, names: string[]): Record<string, string> {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return Object.fromEntries(names.map((name) => [name, lower[name]!]));
}
