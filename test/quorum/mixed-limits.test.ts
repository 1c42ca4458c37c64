/**
 * Children whose limits are each legal but differ: the quorum's manifest and block status must
 * still be in whole blocks of its own (the largest) minimum block size, and children that cannot
 * serve one block together are refused.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BlockDriver } from '../../src/driver.js';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { FilterDriver } from '../../src/filter.js';
import { Quorum } from '../../src/quorum/quorum.js';
import type { BlockExtent, BlockLimits } from '../../src/types.js';
import { Limited } from './harness.js';

const SIZE = 64 * 1024;
const limits = (l: Partial<BlockLimits>): BlockLimits => ({ minBlockSize: 1, preferredBlockSize: 4096, maxBlockSize: 1 << 20, maxTransfer: 1 << 20, ...l });

/** A byte-granular child that answers block status from a fixed list of zero runs. */
class ZeroRuns extends FilterDriver {
  constructor(child: BlockDriver, readonly runs: readonly [number, number][]) {
    super(child);
  }
  protected override _blockStatus(offset: number, length: number): Promise<BlockExtent[]> {
    const end = offset + length;
    const out: BlockExtent[] = [];
    let pos = offset;
    for (const [s, e] of this.runs) {
      if (e <= pos || s >= end) continue;
      if (s > pos) out.push({ offset: pos, length: s - pos, zero: false, allocated: true });
      const stop = Math.min(e, end);
      out.push({ offset: Math.max(s, pos), length: stop - Math.max(s, pos), zero: true, allocated: false });
      pos = stop;
    }
    if (pos < end) out.push({ offset: pos, length: end - pos, zero: false, allocated: true });
    return Promise.resolve(out);
  }
}

describe('Quorum over children with different limits', () => {
  it('rounds the combined maxima down to whole blocks of the largest minimum', () => {
    const q = new Quorum({
      children: [
        new Limited(new MemoryDriver({ size: SIZE }), limits({ minBlockSize: 512 })),
        new Limited(new MemoryDriver({ size: SIZE }), limits({ maxBlockSize: 1_000_000, maxTransfer: 40_000 })),
      ],
      threshold: 2,
    });
    expect(q.limits).toMatchObject({ minBlockSize: 512, maxBlockSize: 999_936, maxTransfer: 39_936 });
  });

  it('refuses children that cannot serve one block together, at construction and in addChild', async () => {
    const big = (): BlockDriver => new Limited(new MemoryDriver({ size: SIZE }), limits({ minBlockSize: 4096 }));
    const small = (): BlockDriver => new Limited(new MemoryDriver({ size: SIZE }), limits({ maxBlockSize: 2048 }));
    expect(() => new Quorum({ children: [big(), small()], threshold: 1 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    const q = new Quorum({ children: [big()], threshold: 1 });
    await expect(q.addChild(small(), { allowManifestChange: true })).rejects.toMatchObject({ code: 'EINVAL' });
    expect(q.members).toHaveLength(1);
  });

  it('answers block status in whole blocks of 512 bytes however the byte-granular child splits them (property)', async () => {
    const runArb = fc.array(fc.tuple(fc.nat(SIZE - 1), fc.integer({ min: 1, max: 3000 })), { maxLength: 6 }).map((rs) =>
      rs
        .map(([s, l]): [number, number] => [s, Math.min(SIZE, s + l)])
        .sort((a, b) => a[0] - b[0])
        .reduce<[number, number][]>((acc, r) => (acc.length > 0 && r[0] <= acc[acc.length - 1][1] ? acc : [...acc, r]), []),
    );
    await fc.assert(
      fc.asyncProperty(runArb, fc.nat(SIZE / 512 - 1), async (runs, startBlock) => {
        const fine = new ZeroRuns(new MemoryDriver({ size: SIZE }), runs);
        const q = new Quorum({ children: [new Limited(new MemoryDriver({ size: SIZE }), limits({ minBlockSize: 512 })), fine], threshold: 2 });
        // Walk from an aligned start as a caller would: every next request starts where an answer ended.
        let pos = startBlock * 512;
        for (let calls = 0; pos < SIZE; calls++) {
          expect(calls).toBeLessThan(SIZE / 512 + 1);
          const extents = await q.blockStatus(pos, SIZE - pos);
          for (const e of extents) {
            expect(e.offset % 512, JSON.stringify(extents)).toBe(0);
            expect((e.offset + e.length) % 512 === 0 || e.offset + e.length === SIZE, JSON.stringify(extents)).toBe(true);
            // Zero only where the fine child said zero for every byte.
            if (e.zero) expect(runs.some(([s, end]) => s <= e.offset && e.offset + e.length <= end), JSON.stringify({ e, runs })).toBe(true);
          }
          pos = extents[extents.length - 1].offset + extents[extents.length - 1].length;
        }
        await q.close();
      }),
      { numRuns: 200 },
    );
  });
});
