/**
 * The shared conformance suite run through NbdClient against each real server installed here:
 * nbdkit's memory plugin (structured replies, block status, multi-conn, no block sizes), qemu-nbd
 * on a raw file (block sizes, no multi-conn) and nbd-server 3.24 (simple replies only). Each
 * driver the suite asks for is a fresh server process of exactly the requested size, stopped by
 * the suite's cleanup; `reopen` connects a new client to the same process.
 */
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { blockDriverSuite } from '../../conformance/index.js';
import type { BlockDriver } from '../../../src/driver.js';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { requirePeer, tmpDir } from '../../helpers/peers.js';
import { startNbdServer, startNbdkit, startQemuNbd, type RunningServer } from './servers.js';

const servers = new WeakMap<BlockDriver, RunningServer & { removeDir(): void }>();

async function cleanup(driver: BlockDriver): Promise<void> {
  const server = servers.get(driver);
  servers.delete(driver);
  await server?.stop();
  server?.removeDir();
}

/** Clients opened by `reopen`: their server belongs to the first client, whose cleanup stops it. */
const reopened = new WeakMap<BlockDriver, RunningServer>();

/** A new client of the server behind a closed one (the suite's `durability` group). */
async function reopen(closed: BlockDriver): Promise<BlockDriver> {
  const server = servers.get(closed) ?? reopened.get(closed);
  if (server === undefined) throw new Error('reopen: no server behind this driver');
  const client = await NbdClient.connect(server.uri);
  reopened.set(client, server);
  return client;
}

async function adopt(server: RunningServer & { removeDir(): void }): Promise<BlockDriver> {
  try {
    const client = await NbdClient.connect(server.uri);
    servers.set(client, server);
    return client;
  } catch (err) {
    await server.stop();
    server.removeDir();
    throw err;
  }
}

/** A raw file of `size` bytes in a fresh directory the server's cleanup removes. */
function rawFile(size: number): { file: string; dir: ReturnType<typeof tmpDir> } {
  const dir = tmpDir('bgc-');
  const file = join(dir.path, 'disk.raw');
  writeFileSync(file, '');
  truncateSync(file, size);
  return { file, dir };
}

// qemu rounds a raw file's size up to whole 512-byte sectors, so its suite uses a sector multiple.
const QEMU_SIZE = 1024 * 1024 + 25 * 512;
const numRuns = 8;

if (requirePeer('nbdkit')) {
  blockDriverSuite({
    name: 'NbdClient → nbdkit memory',
    factory: async ({ size }) => adopt(await startNbdkit(['memory', String(size)])),
    reopen,
    cleanup,
    numRuns,
  });
}

if (requirePeer('nbdkit')) {
  // Block-size constraints: aligned-only requests, reads and writes cut at 64 KiB.
  blockDriverSuite({
    name: 'NbdClient → nbdkit memory (blocksize-policy 4K/4K/64K)',
    factory: async ({ size }) =>
      adopt(
        await startNbdkit([
          '--filter=blocksize-policy',
          'memory',
          String(size),
          'blocksize-minimum=4096',
          'blocksize-preferred=4096',
          'blocksize-maximum=65536',
          'blocksize-error-policy=error',
        ]),
      ),
    reopen,
    cleanup,
    numRuns,
  });
  blockDriverSuite({
    name: 'NbdClient → nbdkit memory (read-only)',
    factory: async ({ size }) => adopt(await startNbdkit(['-r', 'memory', String(size)])),
    reopen,
    cleanup,
    numRuns,
  });
}

if (requirePeer('qemu-nbd')) {
  blockDriverSuite({
    name: 'NbdClient → qemu-nbd raw',
    size: QEMU_SIZE,
    factory: async ({ size }) => {
      const { file, dir } = rawFile(size);
      return adopt(await startQemuNbd(file, [], dir));
    },
    reopen,
    cleanup,
    numRuns,
  });
}

if (requirePeer('nbd-server')) {
  blockDriverSuite({
    name: 'NbdClient → nbd-server',
    factory: async ({ size }) => {
      const { file, dir } = rawFile(size);
      return adopt(await startNbdServer(file, 'disk', dir));
    },
    reopen,
    cleanup,
    numRuns,
  });
}
