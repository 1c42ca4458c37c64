import { describe, expect, it } from 'vitest';
import { BlockError, MemoryDriver } from '../src/index.js';

describe('MemoryDriver smoke', () => {
  it('reads back what it wrote and handles a 1 TiB sparse size', async () => {
    const d = new MemoryDriver({ size: 2 ** 40 });
    await d.write(2 ** 39 + 3, new Uint8Array([1, 2, 3]));
    expect([...(await d.read(2 ** 39 + 2, 5))]).toEqual([0, 1, 2, 3, 0]);
    expect(d.allocatedBytes).toBe(65536);
    const ext = await d.blockStatus(0, 2 ** 40);
    expect(ext.length).toBe(3);
    await expect(d.read(2 ** 40, 1)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(d.write(2 ** 40, new Uint8Array(1))).rejects.toBeInstanceOf(BlockError);
    await d.close();
    await expect(d.read(0, 1)).rejects.toMatchObject({ code: 'ESHUTDOWN' });
  });
});
