/**
 * blockgraph on both ends: NbdClient → NbdServer → MemoryDriver. The conformance suite runs
 * through the pair (with extended headers, the default when both sides have them, and with
 * structured replies only), and the pair proves what no installed peer can: 64-bit lengths.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { blockDriverSuite } from '../../conformance/index.js';
import type { BlockDriver } from '../../../src/driver.js';
import { FileDriver } from '../../../src/drivers/file.js';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import { FilterDriver } from '../../../src/filter.js';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { NbdServer } from '../../../src/nbd/server/index.js';
import type { DiscardOptions, IoOptions, WriteZeroesOptions } from '../../../src/types.js';
import { tmpSocketPath } from '../../helpers/peers.js';
import { expectSameBytes, patternBytes } from '../../helpers/bytes.js';

interface Served {
  server: NbdServer;
  backing: BlockDriver;
  socket: { path: string; remove: () => void };
}

const served = new WeakMap<BlockDriver, Served & { uri: string }>();

async function serve(backing: BlockDriver): Promise<Served & { uri: string }> {
  const server = new NbdServer();
  server.addExport('', backing);
  const socket = tmpSocketPath();
  await server.listen({ path: socket.path });
  return { server, backing, socket, uri: `nbd+unix:///?socket=${socket.path}` };
}

async function stop(s: Served): Promise<void> {
  // The client has closed (DISC sent, socket closed): a graceful close has nothing to drain.
  await s.server.close();
  await s.backing.close();
  s.socket.remove();
}

function loopbackFactory(extendedHeaders: boolean) {
  return async ({ size }: { size: number }): Promise<BlockDriver> => {
    const s = await serve(new MemoryDriver({ size }));
    const client = await NbdClient.connect(s.uri, { extendedHeaders });
    served.set(client, s);
    return client;
  };
}

/**
 * A new client of the same server (the suite's `durability` group). It is not put in `served`:
 * the first client's cleanup, which the suite runs last, stops the server.
 */
function loopbackReopen(extendedHeaders: boolean) {
  const behind = new WeakMap<BlockDriver, Served & { uri: string }>();
  return async (closed: BlockDriver): Promise<BlockDriver> => {
    const s = served.get(closed) ?? behind.get(closed);
    if (s === undefined) throw new Error('reopen: no server behind this driver');
    const client = await NbdClient.connect(s.uri, { extendedHeaders });
    behind.set(client, s);
    return client;
  };
}

async function cleanup(driver: BlockDriver): Promise<void> {
  const s = served.get(driver);
  served.delete(driver);
  if (s !== undefined) await stop(s);
}

blockDriverSuite({ name: 'NbdClient → NbdServer (extended headers)', factory: loopbackFactory(true), reopen: loopbackReopen(true), cleanup, numRuns: 10 });
blockDriverSuite({ name: 'NbdClient → NbdServer (structured replies)', factory: loopbackFactory(false), reopen: loopbackReopen(false), cleanup, numRuns: 10 });

// A file export: the server offers fast zeroing for every writable export and the FileDriver
// refuses it (ENOTSUP, changing nothing), which the spec allows and the suite must accept.
const imageDir = mkdtempSync(join(tmpdir(), 'blockgraph-loopback-'));
afterAll(() => rmSync(imageDir, { recursive: true, force: true }));
let images = 0;
blockDriverSuite({
  name: 'NbdClient → NbdServer → FileDriver',
  factory: async ({ size }) => {
    const s = await serve(await FileDriver.open(join(imageDir, `image-${images++}`), { create: true, size }));
    const client = await NbdClient.connect(s.uri);
    served.set(client, s);
    return client;
  },
  cleanup,
  numRuns: 10,
});

/** Records the lengths of the payload-free requests that reach the backing driver. */
class Recorder extends FilterDriver {
  readonly calls: string[] = [];
  protected override _discard(offset: number, length: number, options: DiscardOptions): Promise<void> {
    this.calls.push(`discard ${offset}+${length}`);
    return super._discard(offset, length, options);
  }
  protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    this.calls.push(`writeZeroes ${offset}+${length}`);
    return super._writeZeroes(offset, length, options);
  }
  protected override _blockStatus(offset: number, length: number, options: IoOptions) {
    this.calls.push(`blockStatus ${offset}+${length}`);
    return super._blockStatus(offset, length, options);
  }
}

describe('extended headers between our client and our server', () => {
  let s: (Served & { uri: string }) | undefined;
  let client: NbdClient | undefined;
  afterEach(async () => {
    await client?.close();
    if (s !== undefined) await stop(s);
    client = undefined;
    s = undefined;
  });

  const GiB = 1024 ** 3;

  it('agree on EXTENDED_HEADERS, and TRIM, WRITE_ZEROES and BLOCK_STATUS over 4 GiB go as single requests', async () => {
    const recorder = new Recorder(new MemoryDriver({ size: 16 * GiB }));
    s = await serve(recorder);
    client = await NbdClient.connect(s.uri);
    expect(client.info).toMatchObject({ replyMode: 'extended', blockStatus: true });
    await client.write(6 * GiB, patternBytes(65536, 1));
    await client.discard(0, 5 * GiB);
    await client.writeZeroes(8 * GiB, 6 * GiB, { mayUnmap: true });
    const extents = await client.blockStatus(0, 16 * GiB);
    expect(recorder.calls).toEqual([`discard 0+${5 * GiB}`, `writeZeroes ${8 * GiB}+${6 * GiB}`, `blockStatus 0+${16 * GiB}`]);
    // The answer describes more than 4 GiB in one go: 64-bit extent lengths.
    expect(extents[0]).toEqual({ offset: 0, length: 6 * GiB, allocated: false, zero: true });
    expect(extents[1]).toMatchObject({ offset: 6 * GiB, allocated: true });
    expectSameBytes(await client.read(6 * GiB, 65536), patternBytes(65536, 1));
  });

  it('without extended headers the same requests are cut below 4 GiB', async () => {
    const recorder = new Recorder(new MemoryDriver({ size: 16 * GiB }));
    s = await serve(recorder);
    client = await NbdClient.connect(s.uri, { extendedHeaders: false });
    expect(client.info.replyMode).toBe('structured');
    await client.discard(0, 5 * GiB);
    expect(recorder.calls.sort()).toEqual([`discard 0+${0xfffff000}`, `discard ${0xfffff000}+${5 * GiB - 0xfffff000}`]);
  });

  it('multi-conn through our server: four connections, data visible across them after flush', async () => {
    s = await serve(new MemoryDriver({ size: 64 * 1024 * 1024 }));
    client = await NbdClient.connect(s.uri, { connections: 4 });
    expect(client.info.connections).toBe(4);
    expect(s.server.connectionCount).toBe(4);
    const c = client;
    await Promise.all(Array.from({ length: 64 }, (_, i) => c.write(i * 1048576, patternBytes(1048576, i))));
    await c.flush();
    const back = await Promise.all(Array.from({ length: 64 }, (_, i) => c.read(i * 1048576, 1048576)));
    back.forEach((b, i) => expectSameBytes(b, patternBytes(1048576, i), `MiB ${i}`));
  });
});
