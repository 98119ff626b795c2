/**
 * A thin HTTP proxy in front of an S3 server that counts every request by S3
 * operation, from outside the client (so a runbook, s5cmd and awscli are
 * counted the same way), and can misbehave like S3 under load: answer a share
 * of requests with 503 SlowDown without forwarding them, and drop a share of
 * connections, half before forwarding the request and half after the server
 * answered (the client never learns that its copy landed).
 *
 * It runs in a child process of its own. In the event loop of the client it
 * measures, its parsing and piping took CPU from the copy (the runbook's rate
 * halved through it in the bench); in a worker thread of the client's process
 * it still cost the runbook 40 % of its rate and s5cmd nothing (5,000 x 4 KB on
 * versitygw: 470 objects/s through it, 781 direct; s5cmd 651 and 647).
 */
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

export interface S3ProxyFaults {
  /** Share of requests answered 503 SlowDown, 0 to 1. */
  slowDown?: number;
  /** Share of requests whose connection is dropped, 0 to 1. */
  drop?: number;
  /** Only requests of these operations misbehave (all when unset). */
  operations?: string[];
}

export interface S3ProxyCounts {
  /** Requests the server answered and the client received, by operation. */
  answered: Record<string, number>;
  /** Requests answered 503 SlowDown by the proxy, never forwarded. */
  slowDowns: number;
  /** Connections dropped before forwarding. */
  droppedBeforeServer: number;
  /** Connections dropped after the server had answered (the request took effect). */
  droppedAfterServer: number;
  /** Most requests of each operation the server worked on at once. */
  peakInFlight: Record<string, number>;
}

export interface S3Proxy {
  endpoint: string;
  counts(): Promise<S3ProxyCounts>;
  reset(): Promise<void>;
  setFaults(faults: S3ProxyFaults): Promise<void>;
  close(): Promise<void>;
}

type Command = { op: 'counts' } | { op: 'reset' } | { op: 'setFaults'; faults: S3ProxyFaults } | { op: 'close' };

/** Where the child reads its upstream and first faults (and knows it is the proxy). */
const CHILD_ENV = 'RUNBOOK_S3_PROXY';

/** The proxy in a child process; every call is one message there and its answer back. */
export async function startS3Proxy(upstream: string, faults: S3ProxyFaults = {}): Promise<S3Proxy> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, [CHILD_ENV]: JSON.stringify({ upstream, faults }) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const answers: ((value: unknown) => void)[] = [];
  child.on('message', (message: unknown) => answers.shift()?.((message as { value?: unknown }).value));
  const failed = new Promise<never>((_, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => reject(new Error(`the S3 proxy exited (${signal ?? code})`)));
  });
  failed.catch(() => {});
  const call = <T>(command?: Command): Promise<T> => {
    const answer = new Promise<T>((resolve) => answers.push(resolve as (value: unknown) => void));
    if (command) child.send(command);
    return Promise.race([answer, failed]);
  };
  const endpoint = await call<string>(); // the child's first message: where it listens
  return {
    endpoint,
    counts: () => call<S3ProxyCounts>({ op: 'counts' }),
    reset: () => call<void>({ op: 'reset' }),
    setFaults: (next) => call<void>({ op: 'setFaults', faults: next }),
    close: async () => {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      await call<void>({ op: 'close' });
      child.disconnect();
      await exited;
    },
  };
}

/** The S3 operation of a request, from its method, query and headers (path-style addressing). */
export function s3Operation(method: string, url: string, headers: http.IncomingHttpHeaders): string {
  const { pathname, searchParams: q } = new URL(url, 'http://proxy');
  const isObject = pathname.split('/').filter(Boolean).length > 1;
  const copy = 'x-amz-copy-source' in headers;
  switch (method) {
    case 'GET':
      if (!isObject)
        return q.has('uploads')
          ? 'ListMultipartUploads'
          : q.get('list-type') === '2'
            ? 'ListObjectsV2'
            : q.has('versions')
              ? 'ListObjectVersions'
              : q.size
                ? `GetBucket?${[...q.keys()][0]}`
                : 'ListObjects';
      return q.has('tagging') ? 'GetObjectTagging' : q.has('uploadId') ? 'ListParts' : 'GetObject';
    case 'HEAD':
      return isObject ? 'HeadObject' : 'HeadBucket';
    case 'PUT':
      if (!isObject) return q.size ? `PutBucket?${[...q.keys()][0]}` : 'CreateBucket';
      if (q.has('partNumber')) return copy ? 'UploadPartCopy' : 'UploadPart';
      if (q.has('tagging')) return 'PutObjectTagging';
      return copy ? 'CopyObject' : 'PutObject';
    case 'POST':
      if (q.has('uploads')) return 'CreateMultipartUpload';
      if (q.has('uploadId')) return 'CompleteMultipartUpload';
      return q.has('delete') ? 'DeleteObjects' : 'Post';
    case 'DELETE':
      if (q.has('uploadId')) return 'AbortMultipartUpload';
      return isObject ? 'DeleteObject' : 'DeleteBucket';
    default:
      return method;
  }
}

const SLOW_DOWN_BODY =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>proxy</RequestId></Error>';

async function serveS3Proxy(upstream: string, faults: S3ProxyFaults): Promise<Omit<S3Proxy, 'counts'> & { counts(): S3ProxyCounts }> {
  const target = new URL(upstream);
  // As many kept-alive sockets to the server as clients may hold to the proxy.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  let counts = emptyCounts();
  const inFlightNow: Record<string, number> = {};
  let current = faults;

  const server = http.createServer((req, res) => {
    const operation = s3Operation(req.method ?? 'GET', req.url ?? '/', req.headers);
    const misbehaves = !current.operations || current.operations.includes(operation);
    const roll = misbehaves ? Math.random() : 1;
    const slowDown = current.slowDown ?? 0;
    const drop = current.drop ?? 0;
    if (roll < slowDown) {
      counts.slowDowns++;
      req.resume();
      res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(SLOW_DOWN_BODY) });
      res.end(SLOW_DOWN_BODY);
      return;
    }
    const dropBefore = roll < slowDown + drop / 2;
    const dropAfter = !dropBefore && roll < slowDown + drop;
    if (dropBefore) {
      counts.droppedBeforeServer++;
      req.socket.destroy();
      return;
    }
    const inFlight = (inFlightNow[operation] = (inFlightNow[operation] ?? 0) + 1);
    counts.peakInFlight[operation] = Math.max(counts.peakInFlight[operation] ?? 0, inFlight);
    let settled = false;
    const settle = () => {
      if (!settled) inFlightNow[operation]!--;
      settled = true;
    };
    const forwarded = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent },
      (answer) => {
        settle();
        if (dropAfter) {
          counts.droppedAfterServer++;
          answer.resume();
          answer.on('end', () => req.socket.destroy());
          return;
        }
        counts.answered[operation] = (counts.answered[operation] ?? 0) + 1;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forwarded.on('error', () => {
      settle();
      req.socket.destroy();
    });
    req.pipe(forwarded);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts: () => counts,
    reset: async () => {
      counts = emptyCounts();
    },
    setFaults: async (next) => {
      current = next;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

function emptyCounts(): S3ProxyCounts {
  return { answered: {}, slowDowns: 0, droppedBeforeServer: 0, droppedAfterServer: 0, peakInFlight: {} };
}

const childConfig = process.env[CHILD_ENV];
if (childConfig && process.send) {
  delete process.env[CHILD_ENV];
  const { upstream, faults } = JSON.parse(childConfig) as { upstream: string; faults: S3ProxyFaults };
  const proxy = await serveS3Proxy(upstream, faults);
  // The client's process ended or let go of it: nothing is left to proxy for.
  process.on('disconnect', () => void proxy.close().finally(() => process.exit(0)));
  const reply = (value: unknown) => process.send!({ value });
  reply(proxy.endpoint);
  process.on('message', (command: Command) => {
    const answer = async (): Promise<unknown> => {
      switch (command.op) {
        case 'counts':
          return proxy.counts();
        case 'reset':
          return proxy.reset();
        case 'setFaults':
          return proxy.setFaults(command.faults);
        case 'close':
          return proxy.close();
      }
    };
    void answer().then(reply);
  });
}
