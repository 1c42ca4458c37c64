/**
 * Devices of 1 TiB and more: a few small ranges anywhere, checked against a sparse model (a set of
 * dirty granule indices), plus whole-device operations with known answers.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DirtyBitmap } from '../../src/bitmap/index.js';
import { SparseModel } from './model.js';

const TiB = 2 ** 40;

const hugeGeometry = fc.record({
  size: fc.constantFrom(TiB, TiB + 12345, 4 * TiB - 1),
  granularity: fc.constantFrom(64 * 1024, 1024 * 1024),
});

/** A range of at most 40 granules, placed anywhere (often near the device end or a word edge). */
function smallRange(size: number, granularity: number): fc.Arbitrary<{ offset: number; length: number }> {
  const granules = Math.ceil(size / granularity);
  const start = fc.oneof(
    fc.integer({ min: 0, max: size }),
    fc.integer({ min: 0, max: granules }).map((g) => Math.min(g * granularity, size)),
    fc.integer({ min: 0, max: 64 * granularity }).map((d) => Math.max(0, size - d)),
  );
  return fc
    .tuple(start, fc.integer({ min: 0, max: 40 * granularity }))
    .map(([offset, length]) => ({ offset, length: Math.min(length, size - offset) }));
}

type Cmd = fc.Command<SparseModel, { bitmap: DirtyBitmap }>;

function hugeCommands(size: number, granularity: number): fc.Arbitrary<Iterable<Cmd>> {
  const r = smallRange(size, granularity);
  const at = fc.oneof(fc.integer({ min: 0, max: size }), r.map((x) => x.offset));
  const mutate = (name: 'set' | 'clear') =>
    r.map(
      ({ offset, length }): Cmd => ({
        check: () => true,
        run(m, real) {
          m[name](offset, length);
          real.bitmap[name](offset, length);
          expect(real.bitmap.count).toBe(m.count);
          expect(real.bitmap.dirtyBytes).toBe(m.dirtyBytes);
        },
        toString: () => `${name}(${offset}, ${length})`,
      }),
    );
  const query = fc.tuple(at, fc.integer({ min: 1, max: 8 * granularity })).map(
    ([pos, max]): Cmd => ({
      check: () => true,
      run(m, real) {
        const b = real.bitmap;
        expect(b.nextDirty(pos)).toBe(m.nextDirty(pos));
        expect(b.nextClean(pos)).toBe(m.nextClean(pos));
        expect(b.nextExtent(pos, max)).toEqual(m.nextExtent(pos, max));
        expect([...b.extents(pos)]).toEqual(m.extents(pos));
        if (pos < size) expect(b.isDirty(pos)).toBe(m.isDirty(pos));
        const len = Math.min(3 * granularity, size - pos);
        expect(b.test(pos, len)).toBe(m.test(pos, len));
      },
      toString: () => `query(${pos}, max ${max})`,
    }),
  );
  return fc.commands([mutate('set'), mutate('clear'), query], { maxCommands: 25 });
}

describe('huge devices', () => {
  it('agree with a sparse model for a few small ranges anywhere', () => {
    fc.assert(
      fc.property(
        hugeGeometry.chain((g) => fc.tuple(fc.constant(g), hugeCommands(g.size, g.granularity))),
        ([g, cmds]) => {
          fc.modelRun(() => ({ model: new SparseModel(g.size, g.granularity), real: { bitmap: new DirtyBitmap(g) } }), cmds);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('handle whole-device and large-range operations on 1 TiB + 12345 bytes', () => {
    const size = TiB + 12345;
    const g = 64 * 1024;
    const granules = Math.ceil(size / g);
    const b = new DirtyBitmap({ size, granularity: g });
    b.setAll();
    expect(b.count).toBe(granules);
    expect(b.dirtyBytes).toBe(size);
    expect([...b.extents()]).toEqual([{ offset: 0, length: size }]);
    expect(b.nextExtent(0, 16 * 2 ** 20)).toEqual({ offset: 0, length: 16 * 2 ** 20 });
    b.clear(100 * 2 ** 30, 200 * 2 ** 30);
    expect(b.dirtyBytes).toBe(size - 200 * 2 ** 30);
    expect(b.nextClean(0)).toBe(100 * 2 ** 30);
    expect(b.nextDirty(100 * 2 ** 30)).toBe(300 * 2 ** 30);
    const copy = DirtyBitmap.deserialize(b.serialize());
    expect([...copy.extents()]).toEqual([
      { offset: 0, length: 100 * 2 ** 30 },
      { offset: 300 * 2 ** 30, length: size - 300 * 2 ** 30 },
    ]);
    b.clear(0, size);
    expect(b.isEmpty).toBe(true);
    b.set(size - 1, 1);
    expect(b.nextExtent(0)).toEqual({ offset: (granules - 1) * g, length: size - (granules - 1) * g });
    b.merge(copy);
    expect(b.count).toBe(copy.count);
  });

  it('index granules past 2^31 (1 TiB at 512-byte granules) without 32-bit overflow', () => {
    const size = TiB + 40 * 512 + 7;
    const b = new DirtyBitmap({ size, granularity: 512 });
    expect(b.granules).toBe(2 ** 31 + 41);
    const high = (2 ** 31 + 3) * 512;
    b.set(high + 100, 1000); // granules 2^31 + 3 .. 2^31 + 5
    expect(b.count).toBe(3);
    expect(b.isDirty(high)).toBe(true);
    expect(b.isDirty(high - 1)).toBe(false);
    expect(b.nextDirty(TiB - 1)).toBe(high);
    expect(b.nextClean(high)).toBe(high + 3 * 512);
    expect([...b.extents(TiB)]).toEqual([{ offset: high, length: 3 * 512 }]);
    expect(b.nextExtent(high + 3 * 512)).toEqual({ offset: high, length: 3 * 512 });
    b.set(size - 1, 1);
    expect(b.dirtyBytes).toBe(3 * 512 + 7);
    b.clear(high, 2 * 512);
    expect([...b.extents(TiB)]).toEqual([
      { offset: high + 2 * 512, length: 512 },
      { offset: size - 7, length: 7 },
    ]);
  });
});
