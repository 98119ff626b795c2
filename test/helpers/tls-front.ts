/**
 * TLS in front of the dev server: `temporal server start-dev` has no TLS
 * flags, so tests terminate TLS (and, when asked, require a client certificate
 * signed by the test CA) in this proxy and pass the gRPC bytes to the dev
 * server's plain port. Clients see a real TLS Temporal frontend.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer, type TLSSocket } from 'node:tls';

export interface TestPki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A CA, a server certificate for localhost/127.0.0.1 and a client certificate, made with openssl. */
export function makePki(dir: string): TestPki {
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=runbook test CA',
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
  );
  for (const [name, subject, ext] of [
    ['server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth'],
    ['client', '/CN=runbook-operator', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`));
    writeFileSync(file(`${name}.ext`), `${ext}\n`);
    openssl(
      'x509',
      '-req',
      '-in',
      file(`${name}.csr`),
      '-CA',
      file('ca.pem'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      file(`${name}.ext`),
      '-out',
      file(`${name}.pem`),
    );
  }
  return {
    ca: file('ca.pem'),
    serverCert: file('server.pem'),
    serverKey: file('server.key'),
    clientCert: file('client.pem'),
    clientKey: file('client.key'),
  };
}

export interface TlsFront {
  address: string;
  /** Client certificate subjects of the TLS sessions accepted so far, in order. */
  accepted: string[];
  /** TLS handshakes refused (no or a wrong client certificate, not TLS at all). */
  refused: number;
  close(): Promise<void>;
}

export async function startTlsFront(pki: TestPki, upstream: string): Promise<TlsFront> {
  const [host, port] = upstream.split(':') as [string, string];
  const sockets = new Set<Socket>();
  const front: Omit<TlsFront, 'address' | 'close'> = { accepted: [], refused: 0 };
  const server = createServer(
    {
      key: readFileSync(pki.serverKey),
      cert: readFileSync(pki.serverCert),
      ca: readFileSync(pki.ca),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    },
    (socket: TLSSocket) => {
      front.accepted.push(String(socket.getPeerCertificate().subject?.CN ?? '?'));
      const plain = connect(Number(port), host);
      for (const s of [socket, plain]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      socket.pipe(plain).pipe(socket);
    },
  );
  server.on('tlsClientError', () => front.refused++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: listening } = server.address() as { port: number };
  return Object.assign(front, {
    address: `127.0.0.1:${listening}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  }) as TlsFront;
}
