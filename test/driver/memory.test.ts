/**
 * MemoryDriver beyond the conformance suite: sparseness at 1 TiB, chunk accounting, and long
 * blockStatus answers that stop short.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';

const TIB = 2 ** 40;
const CHUNK = 64 * 1024;

describe('MemoryDriver at 1 TiB', () => {
  it('writes at the far end, and blockStatus over the whole device stays a handful of extents', async () => {
    const d = new MemoryDriver({ size: TIB });
    const tail = TIB - 10;
    await d.write(tail, new Uint8Array([9, 8, 7, 6, 5, 4, 3, 2, 1, 1]));
    expect([...(await d.read(tail - 2, 12))]).toEqual([0, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1]);
    await d.write(TIB / 2, new Uint8Array([1]));
    expect(d.allocatedBytes).toBe(2 * CHUNK);
    const extents = await d.blockStatus(0, TIB);
    expect(extents).toEqual([
      { offset: 0, length: TIB / 2, zero: true, allocated: false },
      { offset: TIB / 2, length: CHUNK, zero: false, allocated: true },
      { offset: TIB / 2 + CHUNK, length: TIB / 2 - 2 * CHUNK, zero: true, allocated: false },
      { offset: TIB - CHUNK, length: CHUNK, zero: false, allocated: true },
    ]);
    await d.close();
  });

  it('zeroes and discards the whole device touching only allocated chunks', async () => {
    const d = new MemoryDriver({ size: TIB });
    await d.write(0, new Uint8Array(3 * CHUNK).fill(1));
    await d.write(TIB - CHUNK, new Uint8Array(CHUNK).fill(2));
    await d.writeZeroes(0, TIB);
    expect(d.allocatedBytes).toBe(4 * CHUNK);
    expect((await d.read(TIB - CHUNK, CHUNK)).every((b) => b === 0)).toBe(true);
    await d.writeZeroes(0, TIB, { mayUnmap: true });
    expect(d.allocatedBytes).toBe(0);
    await d.write(5 * CHUNK + 1, new Uint8Array(1).fill(3));
    await d.discard(0, TIB);
    expect(d.allocatedBytes).toBe(0);
    expect(await d.blockStatus(0, TIB)).toEqual([{ offset: 0, length: TIB, zero: true, allocated: false }]);
    await d.close();
  });

  it('frees the partial last chunk of a device whose size is not a multiple of the chunk size', async () => {
    const size = TIB + 4096;
    const d = new MemoryDriver({ size });
    await d.write(size - 4096, new Uint8Array(4096).fill(5));
    expect(d.allocatedBytes).toBe(CHUNK);
    await d.discard(size - 4096, 4096);
    expect(d.allocatedBytes).toBe(0);
    expect(await d.blockStatus(size - 4096, 4096)).toEqual([{ offset: size - 4096, length: 4096, zero: true, allocated: false }]);
    await d.write(size - 100, new Uint8Array(100).fill(6));
    await d.writeZeroes(0, size, { mayUnmap: true });
    expect(d.allocatedBytes).toBe(0);
    await d.close();
  });
});

describe('MemoryDriver chunk accounting', () => {
  it('frees a chunk only when a discard or unmapping zero covers all of it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(4 * 4096), fc.integer({ min: 1, max: 4 * 4096 }), async (offset, length) => {
        const d = new MemoryDriver({ size: 8 * 4096, chunkSize: 4096 });
        await d.write(0, new Uint8Array(8 * 4096).fill(1));
        await d.discard(offset, length);
        const firstWhole = Math.ceil(offset / 4096);
        const endWhole = Math.floor((offset + length) / 4096);
        const freed = Math.max(0, endWhole - firstWhole);
        expect(d.allocatedBytes).toBe((8 - freed) * 4096);
        await d.close();
        expect(d.allocatedBytes).toBe(0);
      }),
      { numRuns: 200 },
    );
  });

  it('answers a blockStatus with very many extents in parts that a caller can walk to the end', async () => {
    const chunk = 512;
    const chunks = 20_000;
    const d = new MemoryDriver({ size: chunks * chunk, chunkSize: chunk });
    for (let i = 0; i < chunks; i += 2) await d.write(i * chunk, new Uint8Array([1]));
    let pos = 0;
    let answers = 0;
    let extents = 0;
    while (pos < d.size) {
      const part = await d.blockStatus(pos, d.size - pos);
      expect(part.length).toBeLessThanOrEqual(4096);
      expect(part[0].offset).toBe(pos);
      for (const e of part) expect(e.allocated).toBe((e.offset / chunk) % 2 === 0);
      extents += part.length;
      pos = part[part.length - 1].offset + part[part.length - 1].length;
      answers++;
    }
    expect(extents).toBe(chunks);
    expect(answers).toBeGreaterThan(1);
    await d.close();
  });

  it('validates its options with RangeErrors', () => {
    for (const size of [-1, 0.5, Number.NaN, 2 ** 53]) expect(() => new MemoryDriver({ size })).toThrow(RangeError);
    for (const chunkSize of [0, 256, 1000, 2 ** 31]) expect(() => new MemoryDriver({ size: 1, chunkSize })).toThrow(RangeError);
    expect(new MemoryDriver({ size: 0 }).size).toBe(0);
  });
});
