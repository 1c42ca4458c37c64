/**
 * STARTTLS with x509 certificates (generated here with openssl) and with pre-shared keys in the
 * `username:hexkey` file format qemu and nbdkit read, against libnbd (nbdinfo, nbdcopy) and qemu.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import { loadNbdPskFile } from '../../../src/nbd/server/index.js';
import { requirePeers, run, runOk, tmpDir } from '../../helpers/peers.js';
import { makeCertificates } from '../../helpers/tls.js';
import { startServer } from './fixture.js';

const peers = requirePeers('openssl', 'nbdinfo', 'qemu-img', 'qemu-io');
const MiB = 1024 * 1024;

describe.skipIf(!peers)('NBD server over TLS', () => {
  let dir: ReturnType<typeof tmpDir>;
  let certs: string;
  let pskDir: string;
  let x509: Awaited<ReturnType<typeof startServer>>;
  let psk: Awaited<ReturnType<typeof startServer>>;
  let optional: Awaited<ReturnType<typeof startServer>>;
  const disk = new MemoryDriver({ size: 4 * MiB });

  beforeAll(async () => {
    dir = tmpDir();
    certs = join(dir.path, 'x509');
    pskDir = join(dir.path, 'psk');
    await runOk('mkdir', ['-p', certs, pskDir]);
    await makeCertificates(peers!.openssl, certs);
    writeFileSync(join(pskDir, 'keys.psk'), `alice:${randomBytes(32).toString('hex')}\n`);
    const key = readFileSync(join(certs, 'server-key.pem'));
    const cert = readFileSync(join(certs, 'server-cert.pem'));
    const ca = readFileSync(join(certs, 'ca-cert.pem'));
    x509 = await startServer({ exports: { '': disk }, tls: { key, cert, ca, verifyClient: true } });
    psk = await startServer({ exports: { '': disk }, tls: { psk: await loadNbdPskFile(join(pskDir, 'keys.psk')) } });
    optional = await startServer({ exports: { '': disk }, tls: { key, cert, required: false } });
  });
  afterAll(async () => {
    await x509?.close();
    await psk?.close();
    await optional?.close();
    dir?.remove();
  });

  it('nbdinfo connects with x509 certificates (client certificate verified)', async () => {
    const r = await runOk(peers!.nbdinfo, ['--json', `nbds://127.0.0.1:${x509.port}/?tls-certificates=${certs}`]);
    expect(JSON.parse(r.stdout)).toMatchObject({ TLS: true, exports: [expect.objectContaining({ 'export-size': 4 * MiB })] });
  });

  it('refuses plain clients on a TLS-only server', async () => {
    // The server answers ERR_TLS_REQD (checked byte-exactly in negotiation.test.ts); nbdinfo gives up.
    const r = await run(peers!.nbdinfo, ['--json', `nbd://127.0.0.1:${x509.port}/`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/opt_go/);
  });

  it('refuses a client certificate it cannot verify', async () => {
    const wrong = join(dir.path, 'wrong');
    await runOk('mkdir', ['-p', wrong]);
    await makeCertificates(peers!.openssl, wrong);
    // The client trusts our CA, but presents a certificate signed by a different one.
    writeFileSync(join(wrong, 'ca-cert.pem'), readFileSync(join(certs, 'ca-cert.pem')));
    const r = await run(peers!.nbdinfo, ['--json', `nbds://127.0.0.1:${x509.port}/?tls-certificates=${wrong}`]);
    expect(r.code).not.toBe(0);
  });

  it('nbdinfo connects with a pre-shared key; a wrong key fails', async () => {
    const r = await runOk(peers!.nbdinfo, ['--json', `nbds://alice@127.0.0.1:${psk.port}/?tls-psk-file=${join(pskDir, 'keys.psk')}`]);
    expect(JSON.parse(r.stdout)).toMatchObject({ TLS: true });
    const bad = join(dir.path, 'bad.psk');
    writeFileSync(bad, `alice:${randomBytes(32).toString('hex')}\n`);
    const f = await run(peers!.nbdinfo, ['--json', `nbds://alice@127.0.0.1:${psk.port}/?tls-psk-file=${bad}`]);
    expect(f.code).not.toBe(0);
  });

  it('qemu-io writes and reads over TLS with tls-creds-x509 and tls-creds-psk', async () => {
    const image = (port: number) => `driver=nbd,host=127.0.0.1,port=${port},tls-creds=tls0`;
    await runOk(peers!['qemu-io'], [
      '--object',
      `tls-creds-x509,id=tls0,endpoint=client,dir=${certs}`,
      '--image-opts',
      image(x509.port),
      '-c',
      'write -P 0x3c 0 64k',
      '-c',
      'read -P 0x3c 0 64k',
    ]);
    const r = await runOk(peers!['qemu-io'], [
      '--object',
      `tls-creds-psk,id=tls0,endpoint=client,dir=${pskDir},username=alice`,
      '--image-opts',
      image(psk.port),
      '-c',
      'read -P 0x3c 0 64k',
    ]);
    expect(r.stdout).not.toMatch(/fail/i);
  });

  it('with optional TLS, plain and TLS clients are both served', async () => {
    const plain = await runOk(peers!.nbdinfo, ['--json', `nbd://127.0.0.1:${optional.port}/`]);
    expect(JSON.parse(plain.stdout)).toMatchObject({ TLS: false });
    const caOnly = join(dir.path, 'ca-only');
    await runOk('mkdir', ['-p', caOnly]);
    writeFileSync(join(caOnly, 'ca-cert.pem'), readFileSync(join(certs, 'ca-cert.pem')));
    const secure = await runOk(peers!.nbdinfo, ['--json', `nbds://127.0.0.1:${optional.port}/?tls-certificates=${caOnly}`]);
    expect(JSON.parse(secure.stdout)).toMatchObject({ TLS: true });
  });
});
