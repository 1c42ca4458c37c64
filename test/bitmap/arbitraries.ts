/** fast-check generators for dirty bitmap tests. */
import fc from 'fast-check';

export interface Geometry {
  readonly size: number;
  readonly granularity: number;
}

/**
 * Small devices: up to 160 granules (five 32-bit words and a bit, so word edges are crossed), sizes
 * that are often not a multiple of the granularity, and the empty device.
 */
export const smallGeometry: fc.Arbitrary<Geometry> = fc
  .record({
    granularity: fc.constantFrom(512, 1024, 4096, 65536),
    granules: fc.oneof(fc.integer({ min: 0, max: 160 }), fc.constantFrom(1, 31, 32, 33, 64, 65)),
    cut: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true })),
  })
  .map(({ granularity, granules, cut }) => {
    const full = granules * granularity;
    const size = granules === 0 ? 0 : full - Math.min(granularity - 1, Math.floor(cut * granularity));
    return { size, granularity };
  });

/** A byte position in `[0, size]`, often on a granule boundary, sometimes next to one. */
export function position(g: Geometry): fc.Arbitrary<number> {
  const granules = Math.ceil(g.size / g.granularity);
  return fc.oneof(
    fc.integer({ min: 0, max: g.size }),
    fc.integer({ min: 0, max: granules }).map((i) => Math.min(i * g.granularity, g.size)),
    fc
      .tuple(fc.integer({ min: 0, max: granules }), fc.constantFrom(-1, 1))
      .map(([i, d]) => Math.max(0, Math.min(i * g.granularity + d, g.size))),
    fc.constant(g.size),
  );
}

/** A range `{ offset, length }` inside the device (possibly empty). */
export function range(g: Geometry): fc.Arbitrary<{ offset: number; length: number }> {
  return fc.tuple(position(g), position(g)).map(([a, b]) => ({ offset: Math.min(a, b), length: Math.abs(a - b) }));
}

/** A granule-aligned range (its end may also be the device end). */
export function alignedRange(g: Geometry): fc.Arbitrary<{ offset: number; length: number }> {
  const granules = Math.ceil(g.size / g.granularity);
  return fc.tuple(fc.integer({ min: 0, max: granules }), fc.integer({ min: 0, max: granules })).map(([a, b]) => {
    const s = Math.min(Math.min(a, b) * g.granularity, g.size);
    const e = Math.min(Math.max(a, b) * g.granularity, g.size);
    return { offset: s, length: e - s };
  });
}

/** A list of ranges to mark dirty, to build a random bitmap. */
export function ranges(g: Geometry, maxLength = 6): fc.Arbitrary<{ offset: number; length: number }[]> {
  return fc.array(range(g), { maxLength });
}
