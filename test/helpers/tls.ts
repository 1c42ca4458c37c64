/**
 * Test certificates made with openssl: a CA, a server certificate for 127.0.0.1 and localhost,
 * and a client certificate, in the file layout qemu's tls-creds-x509 and nbdkit's
 * --tls-certificates read (ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem,
 * client-key.pem).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOk } from './peers.js';

export async function makeCertificates(openssl: string, dir: string): Promise<void> {
  const ssl = (...args: string[]) => runOk(openssl, args, { cwd: dir });
  await ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem', '-days', '2', '-subj', '/CN=blockgraph test CA');
  for (const who of ['server', 'client']) {
    await ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}-key.pem`, '-out', `${who}.csr`, '-subj', `/CN=${who === 'server' ? 'localhost' : 'blockgraph-client'}`);
    const ext = join(dir, `${who}.ext`);
    writeFileSync(
      ext,
      who === 'server'
        ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n'
        : 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n',
    );
    await ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', `${who}-cert.pem`, '-days', '2', '-extfile', ext);
  }
}
