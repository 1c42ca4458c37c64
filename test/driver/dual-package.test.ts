/**
 * Two copies of the package in one process (its ESM and CommonJS builds side by side, or two
 * installs): a driver built on one copy must be accepted by the other's Quorum, filters and NBD
 * server. vi.resetModules() makes the dynamic import below load a second, separate copy of the
 * sources, with its own BlockDriver class.
 */
import { describe, expect, it, vi } from 'vitest';
import { BlockDriver, isBlockDriver } from '../../src/driver.js';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { FilterDriver } from '../../src/filter.js';
import { ReadOnly } from '../../src/filters/read-only.js';
import { Slice } from '../../src/filters/slice.js';
import { NbdServer } from '../../src/nbd/server/index.js';
import { Quorum } from '../../src/quorum/index.js';

async function otherCopy(): Promise<typeof import('../../src/index.js')> {
  vi.resetModules();
  return import('../../src/index.js');
}

describe('a driver from another copy of the package', () => {
  it('is a BlockDriver to this copy, and its subclasses keep the ordinary check', async () => {
    const other = await otherCopy();
    expect(other.BlockDriver).not.toBe(BlockDriver);
    const foreign = new other.MemoryDriver({ size: 4096 });
    expect(foreign instanceof BlockDriver).toBe(true);
    expect(isBlockDriver(foreign)).toBe(true);
    expect(foreign instanceof MemoryDriver).toBe(false);
    expect(new MemoryDriver({ size: 4096 }) instanceof other.BlockDriver).toBe(true);
    expect(new MemoryDriver({ size: 4096 }) instanceof FilterDriver).toBe(false);
    for (const notADriver of [null, undefined, {}, 1, 'x', new Uint8Array(1), Object.create(null)]) {
      expect(notADriver instanceof BlockDriver).toBe(false);
      expect(isBlockDriver(notADriver)).toBe(false);
    }
    await foreign.close();
  });

  it('joins a Quorum, sits under filters and is served over NBD', async () => {
    const other = await otherCopy();
    const foreign = [0, 1, 2].map(() => new other.MemoryDriver({ size: 64 * 1024 }));
    const quorum = new Quorum({ children: foreign, threshold: 2 });
    const data = new Uint8Array(4096).fill(7);
    await quorum.write(0, data);
    expect(await quorum.read(0, 4096)).toEqual(data);
    const ro = new ReadOnly(new other.MemoryDriver({ size: 8192 }));
    expect(ro.capabilities.canWrite).toBe(false);
    const slice = new Slice(new other.MemoryDriver({ size: 8192 }), { offset: 4096, length: 4096 });
    expect(slice.size).toBe(4096);
    const server = new NbdServer();
    server.addExport('foreign', new other.MemoryDriver({ size: 8192 }));
    await server.close();
    await Promise.all([quorum.close(), ro.close(), slice.close()]);
  });
});
