/** Construction, memory use, and bad arguments of DirtyBitmap. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockError } from '../../src/errors.js';
import { DEFAULT_BITMAP_GRANULARITY, DirtyBitmap } from '../../src/bitmap/index.js';
import { ranges, smallGeometry } from './arbitraries.js';

const TiB = 2 ** 40;
const einval = expect.objectContaining({ name: 'BlockError', code: 'EINVAL' });

describe('options', () => {
  it('defaults to 64 KiB granules', () => {
    const b = new DirtyBitmap({ size: 1 << 20 });
    expect(b.granularity).toBe(64 * 1024);
    expect(DEFAULT_BITMAP_GRANULARITY).toBe(64 * 1024);
    expect(b.granules).toBe(16);
  });

  it('rejects sizes that are not non-negative safe integers with RangeError', () => {
    for (const size of [-1, 1.5, NaN, Infinity, 2 ** 53, '4096' as unknown as number, undefined as unknown as number]) {
      expect(() => new DirtyBitmap({ size }), String(size)).toThrow(RangeError);
    }
  });

  it('rejects granularities that are not powers of two from 512 B to 2 GiB with RangeError', () => {
    // The last three are one float step off a power of two, which Math.log2 rounds to an integer.
    for (const granularity of [0, -512, 1, 256, 511, 513, 1000, 1536, 2 ** 32, NaN, Infinity, '4096' as unknown as number, 65536.00000000001, 512.0000000000001, 2 ** 31 - 2 ** -22]) {
      expect(() => new DirtyBitmap({ size: 4096, granularity }), String(granularity)).toThrow(RangeError);
    }
    for (const granularity of [512, 4096, 2 ** 31]) expect(new DirtyBitmap({ size: 1, granularity }).granules).toBe(1);
  });

  it('rejects a missing options object with TypeError', () => {
    expect(() => new DirtyBitmap(undefined as never)).toThrow(TypeError);
    expect(() => new DirtyBitmap(null as never)).toThrow(TypeError);
  });

  it('fails with ENOMEM when the bits cannot be allocated', () => {
    // 2^53 bytes at 512-byte granules is 2^44 bits (2 TiB of bitmap).
    expect(() => new DirtyBitmap({ size: Number.MAX_SAFE_INTEGER, granularity: 512 })).toThrow(
      expect.objectContaining({ name: 'BlockError', code: 'ENOMEM' }),
    );
  });
});

describe('memory: one bit per granule', () => {
  it('a 1 TiB device at 64 KiB granules holds exactly 2 MiB of bits', () => {
    expect(new DirtyBitmap({ size: TiB }).byteLength).toBe(2 * 1024 * 1024);
  });

  it('byteLength is ceil(granules / 32) 32-bit words for any geometry', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: TiB + 12345 }),
        fc.integer({ min: 20, max: 31 }).map((n) => 2 ** n),
        (size, granularity) => {
          const b = new DirtyBitmap({ size, granularity });
          const bits = Math.ceil(size / granularity);
          expect(b.granules).toBe(bits);
          expect(b.byteLength).toBe(4 * Math.ceil(bits / 32));
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('bad ranges', () => {
  const badOffsets = [-1, 0.5, NaN, Infinity, -Infinity, 2 ** 53];

  it('set, clear, test and isDirty reject bad or out-of-device ranges with EINVAL and change nothing', () => {
    fc.assert(
      fc.property(
        smallGeometry.chain((g) => fc.tuple(fc.constant(g), ranges(g))),
        fc.constantFrom(...badOffsets),
        fc.integer({ min: 1, max: 5000 }),
        ([g, parts], bad, over) => {
          const b = new DirtyBitmap(g);
          for (const p of parts) b.set(p.offset, p.length);
          const before = b.serialize();
          for (const op of ['set', 'clear', 'test'] as const) {
            expect(() => b[op](bad, 1), `${op} offset ${bad}`).toThrow(einval);
            expect(() => b[op](0, bad), `${op} length ${bad}`).toThrow(einval);
            expect(() => b[op](g.size, over), `${op} past the end`).toThrow(einval);
            expect(() => b[op](Math.max(0, g.size - 1), over + 1), `${op} straddling the end`).toThrow(einval);
          }
          expect(() => b.isDirty(g.size)).toThrow(einval);
          expect(() => b.isDirty(bad)).toThrow(einval);
          expect(b.serialize()).toEqual(before);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('searches accept any position at or past the end but reject bad ones with EINVAL', () => {
    const b = new DirtyBitmap({ size: 10_000, granularity: 512 });
    b.setAll();
    expect(b.nextDirty(10_000)).toBe(-1);
    expect(b.nextClean(2 ** 50)).toBe(-1);
    for (const bad of badOffsets) {
      expect(() => b.nextDirty(bad)).toThrow(einval);
      expect(() => b.nextClean(bad)).toThrow(einval);
      expect(() => b.nextExtent(bad)).toThrow(einval);
      expect(() => b.extents(bad)).toThrow(einval);
    }
    expect(() => b.extents(10, 5)).toThrow(einval);
    expect(() => b.extents(0, 10_001)).toThrow(einval);
    for (const max of [0, -1, 1.5, NaN, -Infinity]) expect(() => b.nextExtent(0, max)).toThrow(einval);
  });

  it('wrong argument types are TypeErrors', () => {
    const b = new DirtyBitmap({ size: 4096, granularity: 512 });
    expect(() => b.set('0' as never, 1)).toThrow(TypeError);
    expect(() => b.clear(0, null as never)).toThrow(TypeError);
    expect(() => b.nextDirty(undefined as never)).toThrow(TypeError);
    expect(() => b.nextExtent(0, '1' as never)).toThrow(TypeError);
    expect(() => DirtyBitmap.deserialize([1, 2, 3] as never)).toThrow(TypeError);
    expect(() => b.set(-1, 1)).toThrow(BlockError);
  });
});

describe('edge geometries', () => {
  it('a zero-byte device is always empty', () => {
    const b = new DirtyBitmap({ size: 0 });
    b.set(0, 0);
    b.setAll();
    b.clear(0, 0);
    expect(b.count).toBe(0);
    expect(b.byteLength).toBe(0);
    expect(b.test(0, 0)).toBe(false);
    expect(() => b.isDirty(0)).toThrow(einval);
    expect(b.nextDirty(0)).toBe(-1);
    expect(b.nextClean(0)).toBe(-1);
    expect([...b.extents()]).toEqual([]);
    expect(b.nextExtent(0)).toBeUndefined();
    expect(DirtyBitmap.deserialize(b.serialize()).size).toBe(0);
  });

  it('offsets near 2^53 stay exact', () => {
    const size = Number.MAX_SAFE_INTEGER;
    const g = 2 ** 31;
    const b = new DirtyBitmap({ size, granularity: g });
    const lastStart = Math.floor(size / g) * g;
    b.set(size - 10, 10);
    expect(b.count).toBe(1);
    expect(b.nextDirty(0)).toBe(lastStart);
    expect(b.dirtyBytes).toBe(size - lastStart);
    expect([...b.extents()]).toEqual([{ offset: lastStart, length: size - lastStart }]);
    expect(b.nextExtent(0)).toEqual({ offset: lastStart, length: size - lastStart });
    b.clear(lastStart + 1, size - lastStart - 1); // misses the granule's first byte: stays dirty
    expect(b.count).toBe(1);
    b.clear(lastStart, size - lastStart); // ends at the device end: the partial granule is covered
    expect(b.isEmpty).toBe(true);
  });
});
