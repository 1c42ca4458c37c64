/** The byte ↔ granule rules and the algebra of DirtyBitmap, one property per rule. */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { DirtyBitmap, type DirtyExtent } from '../../src/bitmap/index.js';
import { alignedRange, position, range, ranges, smallGeometry, type Geometry } from './arbitraries.js';
import { ArrayModel } from './model.js';

const RUNS = { numRuns: 300 };

function build(g: Geometry, parts: { offset: number; length: number }[]): DirtyBitmap {
  const b = new DirtyBitmap(g);
  for (const p of parts) b.set(p.offset, p.length);
  return b;
}

/** Bytes in a list of extents, as a list of [start, end) pairs. */
const pairs = (xs: Iterable<DirtyExtent>) => [...xs].map((x) => [x.offset, x.offset + x.length]);

const withRange = smallGeometry.chain((g) => fc.tuple(fc.constant(g), range(g)));
const withRanges = smallGeometry.chain((g) => fc.tuple(fc.constant(g), ranges(g), range(g)));

describe('set widens to whole granules', () => {
  it('dirties exactly the granules the range touches, clamped to the size', () => {
    fc.assert(
      fc.property(withRange, ([g, { offset, length }]) => {
        const b = new DirtyBitmap(g);
        b.set(offset, length);
        const expected =
          length === 0
            ? []
            : [[Math.floor(offset / g.granularity) * g.granularity, Math.min(Math.ceil((offset + length) / g.granularity) * g.granularity, g.size)]];
        expect(pairs(b.extents())).toEqual(expected);
      }),
      RUNS,
    );
  });

  it('makes every byte of the range dirty and leaves other granules as they were', () => {
    fc.assert(
      fc.property(withRanges, ([g, before, { offset, length }]) => {
        const b = build(g, before);
        const old = b.clone();
        b.set(offset, length);
        if (length > 0) expect(b.nextClean(offset) === -1 || b.nextClean(offset) >= offset + length).toBe(true);
        const touchedFrom = Math.floor(offset / g.granularity) * g.granularity;
        const touchedTo = length === 0 ? touchedFrom : Math.min(Math.ceil((offset + length) / g.granularity) * g.granularity, g.size);
        expect(pairs(b.extents(0, touchedFrom))).toEqual(pairs(old.extents(0, touchedFrom)));
        expect(pairs(b.extents(touchedTo, g.size))).toEqual(pairs(old.extents(touchedTo, g.size)));
      }),
      RUNS,
    );
  });
});

describe('clear shrinks to whole granules', () => {
  it('never cleans a byte outside its range', () => {
    fc.assert(
      fc.property(withRange, ([g, { offset, length }]) => {
        const b = new DirtyBitmap(g);
        b.setAll();
        b.clear(offset, length);
        for (const [s, e] of [[0, offset], [offset + length, g.size]]) {
          if (e > s) expect(b.nextClean(s) === -1 || b.nextClean(s) >= e).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it('cleans every granule the range covers, the partial last granule when the range reaches the end', () => {
    fc.assert(
      fc.property(withRange, ([g, { offset, length }]) => {
        const b = new DirtyBitmap(g);
        b.setAll();
        b.clear(offset, length);
        const first = Math.ceil(offset / g.granularity) * g.granularity;
        const end = offset + length === g.size ? g.size : Math.floor((offset + length) / g.granularity) * g.granularity;
        if (end > first) expect(b.test(first, end - first)).toBe(false);
        // Exactly those: the dirty bytes are everything else.
        expect(b.dirtyBytes).toBe(g.size - Math.max(0, end - first));
      }),
      RUNS,
    );
  });

  it('undoes set exactly on granule-aligned ranges', () => {
    fc.assert(
      fc.property(
        smallGeometry.chain((g) => fc.tuple(fc.constant(g), ranges(g), alignedRange(g))),
        ([g, before, { offset, length }]) => {
          const b = build(g, before);
          const old = b.clone();
          b.set(offset, length);
          b.clear(offset, length);
          expect(b.test(offset, length)).toBe(false);
          old.clear(offset, length);
          expect(pairs(b.extents())).toEqual(pairs(old.extents()));
        },
      ),
      RUNS,
    );
  });
});

describe('queries', () => {
  it('extents are ordered, disjoint, maximal and add up to dirtyBytes', () => {
    fc.assert(
      fc.property(withRanges, ([g, parts]) => {
        const b = build(g, parts);
        const xs = [...b.extents()];
        let prevEnd = -1;
        let total = 0;
        for (const x of xs) {
          expect(x.length).toBeGreaterThan(0);
          expect(x.offset).toBeGreaterThan(prevEnd); // strictly: adjacent runs would not be maximal
          expect(b.test(x.offset, x.length)).toBe(true);
          expect(b.nextClean(x.offset) === -1 ? g.size : b.nextClean(x.offset)).toBe(x.offset + x.length);
          if (prevEnd >= 0) expect(b.test(prevEnd, x.offset - prevEnd)).toBe(false);
          prevEnd = x.offset + x.length;
          total += x.length;
        }
        expect(prevEnd).toBeLessThanOrEqual(g.size);
        expect(total).toBe(b.dirtyBytes);
        expect(b.isEmpty).toBe(xs.length === 0);
      }),
      RUNS,
    );
  });

  it('nextDirty and nextClean agree with isDirty at the answer and before it', () => {
    fc.assert(
      fc.property(
        smallGeometry.chain((g) => fc.tuple(fc.constant(g), ranges(g), position(g))),
        ([g, parts, from]) => {
          const b = build(g, parts);
          const d = b.nextDirty(from);
          const c = b.nextClean(from);
          if (d !== -1) {
            expect(d).toBeGreaterThanOrEqual(from);
            expect(b.isDirty(d)).toBe(true);
            expect(b.test(from, d - from)).toBe(false);
          } else if (from < g.size) expect(b.test(from, g.size - from)).toBe(false);
          if (c !== -1) {
            expect(b.isDirty(c)).toBe(false);
            expect(b.nextClean(from)).toBe(c);
          }
          // Exactly one of them answers `from` itself when it is inside the device.
          if (from < g.size) expect([d, c].filter((x) => x === from)).toHaveLength(1);
        },
      ),
      RUNS,
    );
  });
});

describe('nextExtent drives a copy loop', () => {
  it('with an aligned cursor and chunk, copying and clearing each extent visits every dirty byte once and ends empty', () => {
    fc.assert(
      fc.property(
        smallGeometry.chain((g) =>
          fc.tuple(fc.constant(g), ranges(g, 8), fc.integer({ min: 0, max: 200 }), fc.integer({ min: 1, max: 8 })),
        ),
        ([g, parts, cursorGranule, chunkGranules]) => {
          const b = build(g, parts);
          const model = new ArrayModel(g.size, g.granularity);
          for (const p of parts) model.set(p.offset, p.length);
          const chunk = chunkGranules * g.granularity;
          let cursor = Math.min(cursorGranule * g.granularity, Math.ceil(g.size / g.granularity) * g.granularity);
          const copied = new ArrayModel(g.size, g.granularity);
          const initial = b.count;
          let steps = 0;
          for (let x = b.nextExtent(cursor, chunk); x !== undefined; x = b.nextExtent(cursor, chunk)) {
            expect(x.length).toBeLessThanOrEqual(chunk);
            expect(x.offset % g.granularity).toBe(0);
            const end = x.offset + x.length;
            expect(end === g.size || end % g.granularity === 0).toBe(true);
            expect(copied.test(x.offset, x.length)).toBe(false); // nothing copied twice
            copied.set(x.offset, x.length);
            b.clear(x.offset, x.length);
            cursor = end;
            expect(++steps).toBeLessThanOrEqual(initial);
          }
          expect(b.isEmpty).toBe(true);
          expect(copied.dirtyGranules()).toEqual(model.dirtyGranules());
        },
      ),
      RUNS,
    );
  });

  it('wraps to the start when nothing is dirty at or after the cursor', () => {
    const b = new DirtyBitmap({ size: 10 * 4096, granularity: 4096 });
    b.set(4096, 1);
    expect(b.nextExtent(8192)).toEqual({ offset: 4096, length: 4096 });
    expect(b.nextExtent(10 * 4096)).toEqual({ offset: 4096, length: 4096 });
    expect(b.nextExtent(2 ** 50)).toEqual({ offset: 4096, length: 4096 });
    b.clearAll();
    expect(b.nextExtent(0)).toBeUndefined();
  });
});

describe('merge, clone, setAll', () => {
  const pair = smallGeometry.chain((g) => fc.tuple(fc.constant(g), ranges(g), ranges(g)));

  it('merge is a union: commutative, idempotent, and equal to setting both range lists', () => {
    fc.assert(
      fc.property(pair, ([g, xs, ys]) => {
        const a = build(g, xs);
        const b = build(g, ys);
        const ab = a.clone();
        ab.merge(b);
        const ba = b.clone();
        ba.merge(a);
        const both = build(g, [...xs, ...ys]);
        expect(pairs(ab.extents())).toEqual(pairs(both.extents()));
        expect(pairs(ba.extents())).toEqual(pairs(both.extents()));
        expect(ab.count).toBe(both.count);
        ab.merge(b);
        ab.merge(ab);
        expect(ab.count).toBe(both.count);
        expect(pairs(b.extents())).toEqual(pairs(build(g, ys).extents())); // the source is untouched
      }),
      RUNS,
    );
  });

  it('merge refuses another size or granularity with EINVAL and changes nothing', () => {
    const a = new DirtyBitmap({ size: 1 << 20, granularity: 4096 });
    a.set(0, 1);
    const other = [
      new DirtyBitmap({ size: (1 << 20) + 1, granularity: 4096 }),
      new DirtyBitmap({ size: 1 << 20, granularity: 8192 }),
    ];
    for (const o of other) {
      o.setAll();
      expect(() => a.merge(o)).toThrow(expect.objectContaining({ name: 'BlockError', code: 'EINVAL' }));
      expect(a.count).toBe(1);
    }
    expect(() => a.merge({} as DirtyBitmap)).toThrow(TypeError);
  });

  it('merges a bitmap from another copy of the package (the CommonJS build beside the ESM one)', async () => {
    vi.resetModules();
    const other = await import('../../src/bitmap/index.js');
    expect(other.DirtyBitmap).not.toBe(DirtyBitmap);
    fc.assert(
      fc.property(pair, ([g, xs, ys]) => {
        const a = build(g, xs);
        const foreign = new other.DirtyBitmap(g);
        for (const p of ys) foreign.set(p.offset, p.length);
        expect(foreign instanceof DirtyBitmap).toBe(true);
        a.merge(foreign as DirtyBitmap);
        const both = build(g, [...xs, ...ys]);
        expect(pairs(a.extents())).toEqual(pairs(both.extents()));
        expect(a.count).toBe(both.count);
      }),
      { numRuns: 100 },
    );
    const mismatched = new other.DirtyBitmap({ size: 4096, granularity: 512 });
    expect(() => new DirtyBitmap({ size: 8192, granularity: 512 }).merge(mismatched as DirtyBitmap)).toThrow(
      expect.objectContaining({ code: 'EINVAL' }),
    );
    for (const notABitmap of [null, {}, new Uint32Array(1)]) expect(notABitmap instanceof DirtyBitmap).toBe(false);
  });

  it('setAll marks every granule, and only those, dirty', () => {
    fc.assert(
      fc.property(smallGeometry, (g) => {
        const b = new DirtyBitmap(g);
        b.setAll();
        expect(b.count).toBe(Math.ceil(g.size / g.granularity));
        expect(b.dirtyBytes).toBe(g.size);
        expect(pairs(b.extents())).toEqual(g.size === 0 ? [] : [[0, g.size]]);
        // Bits past the last granule stay clear: a round trip accepts the image.
        expect(DirtyBitmap.deserialize(b.serialize()).count).toBe(b.count);
      }),
      RUNS,
    );
  });
});
