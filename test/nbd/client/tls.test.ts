/**
 * NbdClient over TLS (STARTTLS): x509 with the server's certificate checked (and a client
 * certificate for servers that verify clients) and pre-shared keys, against our own NbdServer and
 * against nbdkit and qemu-nbd. A client asked to use TLS never falls back to plain text.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blockDriverSuite } from '../../conformance/index.js';
import type { BlockDriver } from '../../../src/driver.js';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { NbdServer, type NbdServerTlsOptions } from '../../../src/nbd/server/index.js';
import { HandshakeFlag, Opt, encodeAck, encodeGreeting } from '../../../src/nbd/protocol/index.js';
import { requirePeers, runOk, tmpDir, tmpSocketPath } from '../../helpers/peers.js';
import { makeCertificates } from '../../helpers/tls.js';
import { startNbdkit, startQemuNbd } from './servers.js';

const peers = requirePeers('openssl', 'nbdkit', 'qemu-nbd');
const MiB = 1024 * 1024;

describe.skipIf(!peers)('NbdClient over TLS', () => {
  let dir: ReturnType<typeof tmpDir>;
  let certs: string;
  let pem: (name: string) => Buffer;
  const pskKey = randomBytes(32);
  const psk = { identity: 'alice', key: pskKey };
  const servers: NbdServer[] = [];

  /** Our server on a fresh Unix socket (the server certificate is for localhost and 127.0.0.1). */
  async function serve(tls: NbdServerTlsOptions | undefined, size = 4 * MiB): Promise<string> {
    const server = new NbdServer(tls === undefined ? {} : { tls });
    servers.push(server);
    server.addExport('', new MemoryDriver({ size }));
    const socket = tmpSocketPath();
    await server.listen({ path: socket.path });
    return `nbd+unix:///?socket=${socket.path}`;
  }
  const x509 = (): NbdServerTlsOptions => ({ key: pem('server-key.pem'), cert: pem('server-cert.pem'), ca: pem('ca-cert.pem'), verifyClient: true });
  const clientCerts = () => ({ ca: pem('ca-cert.pem'), cert: pem('client-cert.pem'), key: pem('client-key.pem') });

  beforeAll(async () => {
    dir = tmpDir();
    certs = join(dir.path, 'x509');
    await runOk('mkdir', ['-p', certs]);
    await makeCertificates(peers!.openssl, certs);
    pem = (name) => readFileSync(join(certs, name));
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    dir?.remove();
  });

  it('x509 both ways against NbdServer: data round-trips, and the server saw TLS', async () => {
    const uri = await serve(x509());
    await using client = await NbdClient.connect(uri, { tls: clientCerts() });
    expect(client.info).toMatchObject({ tls: true, uri: expect.stringMatching(/^nbds\+unix:\/\/\//) });
    const data = randomBytes(MiB);
    await client.write(12345, data);
    expect(Buffer.from(await client.read(12345, MiB)).equals(data)).toBe(true);
    await client.flush();
  });

  it('nbds+unix:// URIs ask for TLS; without a trusted CA the server certificate is refused (EPERM)', async () => {
    const uri = (await serve({ key: pem('server-key.pem'), cert: pem('server-cert.pem') })).replace('nbd+unix', 'nbds+unix');
    await expect(NbdClient.connect(uri)).rejects.toMatchObject({ code: 'EPERM', message: expect.stringMatching(/TLS handshake failed/) });
    await using trusted = await NbdClient.connect(uri, { tls: { ca: pem('ca-cert.pem') } });
    expect(trusted.size).toBe(4 * MiB);
    // Encryption without authentication, when asked for in so many words.
    await using blind = await NbdClient.connect(uri, { tls: { rejectUnauthorized: false } });
    expect(blind.size).toBe(4 * MiB);
  });

  it('checks the name in the server certificate', async () => {
    const uri = await serve({ key: pem('server-key.pem'), cert: pem('server-cert.pem') });
    await expect(NbdClient.connect(uri, { tls: { ca: pem('ca-cert.pem'), servername: 'elsewhere.example' } })).rejects.toMatchObject({ code: 'EPERM' });
  });

  it('a server that verifies clients refuses one without a certificate', async () => {
    const uri = await serve(x509());
    await expect(NbdClient.connect(uri, { tls: { ca: pem('ca-cert.pem') }, connectTimeout: 5000 })).rejects.toMatchObject({ code: 'EPERM' });
    // TLS 1.2 refuses during the handshake itself; the same code.
    await expect(NbdClient.connect(uri, { tls: { ca: pem('ca-cert.pem'), connectOptions: { maxVersion: 'TLSv1.2' } }, connectTimeout: 5000 })).rejects.toMatchObject({ code: 'EPERM' });
  });

  it('pre-shared keys: the right key connects, a wrong key fails with EPERM', async () => {
    const uri = await serve({ psk: new Map([['alice', pskKey]]) });
    await using client = await NbdClient.connect(uri, { tls: { psk } });
    await client.write(0, new Uint8Array(4096).fill(7));
    expect((await client.read(0, 4096))[4095]).toBe(7);
    // TLS 1.2 PSK suites too (Node's default cipher list deletes them; both ends put them back).
    await using old = await NbdClient.connect(uri, { tls: { psk, connectOptions: { maxVersion: 'TLSv1.2' } } });
    expect((await old.read(0, 4096))[0]).toBe(7);
    await expect(NbdClient.connect(uri, { tls: { psk: { identity: 'alice', key: randomBytes(32) } } })).rejects.toMatchObject({ code: 'EPERM' });
    await expect(NbdClient.connect(uri, { tls: { psk: { identity: 'mallory', key: pskKey } } })).rejects.toMatchObject({ code: 'EPERM' });
  });

  it('never falls back to plain text: a server without TLS is refused (EPERM), a TLS-only one refuses a plain client (ENOTSUP)', async () => {
    const plain = await serve(undefined);
    await expect(NbdClient.connect(plain, { tls: clientCerts() })).rejects.toMatchObject({ code: 'EPERM', message: expect.stringMatching(/STARTTLS/) });
    const only = await serve(x509());
    await expect(NbdClient.connect(only)).rejects.toMatchObject({ code: 'ENOTSUP', message: expect.stringMatching(/requires TLS/) });
  });

  it('refuses bad TLS options before connecting', async () => {
    await expect(NbdClient.connect('nbd://127.0.0.1:1/', { tls: { cert: 'x' } })).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(NbdClient.connect('nbd://127.0.0.1:1/', { tls: { psk: { identity: '', key: pskKey } } })).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('against nbdkit --tls=require: x509 certificates and a PSK file', async () => {
    const kit = await startNbdkit(['--tls=require', `--tls-certificates=${certs}`, 'memory', '8M']);
    try {
      await using client = await NbdClient.connect(kit.uri, { tls: { ca: pem('ca-cert.pem') } });
      const data = randomBytes(256 * 1024);
      await client.write(MiB, data);
      expect(Buffer.from(await client.read(MiB, data.length)).equals(data)).toBe(true);
      // Without TLS nbdkit refuses, and we say why.
      await expect(NbdClient.connect(kit.uri)).rejects.toMatchObject({ code: 'ENOTSUP' });
    } finally {
      await kit.stop();
      kit.removeDir();
    }
    const keys = join(dir.path, 'keys.psk');
    writeFileSync(keys, `alice:${pskKey.toString('hex')}\n`);
    const pskKit = await startNbdkit(['--tls=require', `--tls-psk=${keys}`, 'memory', '8M']);
    try {
      await using client = await NbdClient.connect(pskKit.uri, { tls: { psk } });
      expect(client.size).toBe(8 * MiB);
    } finally {
      await pskKit.stop();
      pskKit.removeDir();
    }
  });

  it('against qemu-nbd with tls-creds-x509 (verify-peer: our client certificate is checked)', async () => {
    const image = join(dir.path, 'disk.raw');
    writeFileSync(image, Buffer.alloc(4 * MiB));
    const q = await startQemuNbd(image, ['--object', `tls-creds-x509,id=tls0,dir=${certs},endpoint=server,verify-peer=on`, '--tls-creds', 'tls0']);
    try {
      await using client = await NbdClient.connect(q.uri, { tls: clientCerts() });
      const data = randomBytes(64 * 1024);
      await client.write(4096, data);
      await client.flush();
      expect(Buffer.from(await client.read(4096, data.length)).equals(data)).toBe(true);
    } finally {
      await q.stop();
      q.removeDir();
    }
    expect(readFileSync(image).subarray(4096, 4096 + 16).some((b) => b !== 0)).toBe(true);
  });
});

// The whole driver contract, spoken through TLS: NbdClient (x509) → NbdServer → MemoryDriver.
const suitePeers = requirePeers('openssl');
if (suitePeers !== undefined) {
  const state: { certs?: { key: Buffer; cert: Buffer; ca: Buffer }; dir?: ReturnType<typeof tmpDir> } = {};
  const served = new WeakMap<BlockDriver, { server: NbdServer; remove: () => void }>();
  async function certificates(): Promise<{ key: Buffer; cert: Buffer; ca: Buffer }> {
    if (state.certs !== undefined) return state.certs;
    state.dir = tmpDir();
    await makeCertificates(suitePeers!.openssl, state.dir.path);
    const read = (n: string): Buffer => readFileSync(join(state.dir!.path, n));
    state.certs = { key: read('server-key.pem'), cert: read('server-cert.pem'), ca: read('ca-cert.pem') };
    return state.certs;
  }
  afterAll(() => state.dir?.remove());
  blockDriverSuite({
    name: 'NbdClient over TLS → NbdServer',
    numRuns: 5,
    factory: async ({ size }) => {
      const { key, cert, ca } = await certificates();
      const server = new NbdServer({ tls: { key, cert } });
      server.addExport('', new MemoryDriver({ size }));
      const socket = tmpSocketPath();
      await server.listen({ path: socket.path });
      const client = await NbdClient.connect(`nbds+unix:///?socket=${socket.path}`, { tls: { ca } });
      served.set(client, { server, remove: socket.remove });
      return client;
    },
    cleanup: async (driver) => {
      const s = served.get(driver);
      if (s === undefined) return;
      const abort = new AbortController();
      const closing = s.server.close({ signal: abort.signal });
      abort.abort();
      await closing;
      s.remove();
    },
  });
}

describe('NbdClient TLS handshake timing', () => {
  it('a server that acknowledges STARTTLS and then stays silent fails the connect with ETIMEDOUT, not a TLS error', async () => {
    const { createServer } = await import('node:net');
    const silent = createServer((s) => {
      // Greeting: fixed newstyle; then ACK the first option (STARTTLS) and say nothing more.
      s.write(encodeGreeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES));
      let got = 0;
      s.on('data', (b) => {
        got += b.length;
        // Client flags (4 bytes) + option header (16 bytes).
        if (got >= 20 && got - b.length < 20) s.write(encodeAck(Opt.STARTTLS));
      });
      s.on('error', () => {});
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as { port: number };
    try {
      await expect(NbdClient.connect(`nbds://127.0.0.1:${port}/`, { tls: { rejectUnauthorized: false }, connectTimeout: 300 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    } finally {
      silent.close();
    }
  });
});
