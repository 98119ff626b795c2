import { S3Client, CreateBucketCommand, PutObjectCommand, CopyObjectCommand } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { createHash, createHmac } from 'node:crypto';
class Sha256 { constructor(secret) { this.h = secret ? createHmac('sha256', secret) : createHash('sha256'); } update(d) { this.h.update(d); } async digest() { return this.h.digest(); } }
import http from 'node:http';
const endpoint = process.argv[2]; const N = 1500; const C = 64;
const creds = { accessKeyId: 'bench', secretAccessKey: 'bench-secret' };
const agent = new http.Agent({ keepAlive: true, maxSockets: 300, maxFreeSockets: 300 });
const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: creds, requestHandler: { httpAgent: agent }, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
await s3.send(new CreateBucketCommand({ Bucket: 'src-a' })).catch(()=>{});
for (const b of ['dst-sdk', 'dst-raw']) await s3.send(new CreateBucketCommand({ Bucket: b })).catch(()=>{});
await s3.send(new PutObjectCommand({ Bucket: 'src-a', Key: 'k', Body: 'x'.repeat(4096) }));
async function pool(fn) { let i = 0; const t = performance.now(); const c = process.cpuUsage();
  await Promise.all(Array.from({ length: C }, async () => { while (i < N) await fn(i++); }));
  const cpu = process.cpuUsage(c); const s = (performance.now() - t) / 1000;
  return `${(N / s).toFixed(0)}/s, CPU ${((cpu.user + cpu.system) / 1000 / N).toFixed(3)} ms/request`; }
const signer = new SignatureV4({ credentials: creds, region: 'us-east-1', service: 's3', sha256: Sha256, uriEscapePath: false, applyChecksum: false });
const u = new URL(endpoint);
async function raw(i) {
  const req = await signer.sign({ method: 'PUT', protocol: 'http:', hostname: u.hostname, port: Number(u.port), path: `/dst-raw/k${i}`, query: {}, headers: { host: u.host, 'x-amz-copy-source': 'src-a/k', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'content-length': '0' } });
  await new Promise((resolve, reject) => { const r = http.request({ agent, host: u.hostname, port: u.port, method: 'PUT', path: req.path, headers: req.headers }, (res) => { let body = ''; res.setEncoding('utf8'); res.on('data', (d) => body += d); res.on('end', () => res.statusCode === 200 && body.includes('CopyObjectResult') ? resolve() : reject(new Error(res.statusCode + body))); }); r.on('error', reject); r.end(); });
}
for (let round = 0; round < 2; round++) {
  console.log('sdk', await pool((i) => s3.send(new CopyObjectCommand({ Bucket: 'dst-sdk', Key: 'k' + i, CopySource: 'src-a/k' }))));
  console.log('raw', await pool(raw));
}
