import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeExtents } from '../../src/driver.js';
import type { BlockExtent } from '../../src/types.js';

/** Flags of the byte at `pos` according to a list of extents (undefined when none covers it). */
function flagsAt(extents: readonly BlockExtent[], pos: number): string | undefined {
  const e = extents.find((x) => pos >= x.offset && pos < x.offset + x.length);
  return e === undefined ? undefined : `${e.zero}/${e.allocated}`;
}

/** A driver-style answer: contiguous extents from `start`, flags random, neighbours maybe equal. */
const answerArb = fc
  .record({
    start: fc.integer({ min: 0, max: 1000 }),
    lengths: fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 12 }),
    flags: fc.array(fc.tuple(fc.boolean(), fc.boolean()), { minLength: 12, maxLength: 12 }),
  })
  .map(({ start, lengths, flags }) => {
    const out: BlockExtent[] = [];
    let pos = start;
    lengths.forEach((length, i) => {
      out.push({ offset: pos, length, zero: flags[i][0], allocated: flags[i][1] });
      pos += length;
    });
    return out;
  });

describe('normalizeExtents', () => {
  it('clamps a contiguous answer to the request, keeps every byte\'s flags, and merges equal neighbours', () => {
    fc.assert(
      fc.property(answerArb, fc.nat(400), fc.integer({ min: 1, max: 3000 }), (answer, into, length) => {
        // The request starts somewhere inside the answer (possibly after its first extents).
        const first = answer[0].offset;
        const answerEnd = answer[answer.length - 1].offset + answer[answer.length - 1].length;
        const offset = Math.min(first + into, answerEnd - 1);
        const out = normalizeExtents(answer, offset, length);
        expect(out[0].offset).toBe(offset);
        let pos = offset;
        for (const [i, e] of out.entries()) {
          expect(e.offset).toBe(pos);
          expect(e.length).toBeGreaterThan(0);
          if (i > 0) expect(`${out[i - 1].zero}/${out[i - 1].allocated}`).not.toBe(`${e.zero}/${e.allocated}`);
          pos += e.length;
        }
        expect(pos).toBe(Math.min(offset + length, answerEnd));
        for (let b = offset; b < pos; b++) expect(flagsAt(out, b)).toBe(flagsAt(answer, b));
      }),
      { numRuns: 300 },
    );
  });

  it('stops at the first gap or overlap, keeping what came before', () => {
    const a = { offset: 0, length: 10, zero: false, allocated: true };
    const gap = { offset: 20, length: 10, zero: true, allocated: false };
    expect(normalizeExtents([a, gap], 0, 100)).toEqual([a]);
    const overlap = { offset: 5, length: 10, zero: true, allocated: false };
    expect(normalizeExtents([a, overlap], 0, 100)).toEqual([a]);
    const empty = { offset: 10, length: 0, zero: true, allocated: false };
    expect(normalizeExtents([a, empty, { ...gap, offset: 10 }], 0, 100)).toEqual([a]);
  });

  it('is EIO when nothing usable covers the offset', () => {
    for (const answer of [
      [],
      [{ offset: 1, length: 10, zero: false, allocated: true }],
      [{ offset: 0, length: 0, zero: false, allocated: true }],
      [{ offset: Number.NaN, length: 10, zero: false, allocated: true }],
      [{ offset: 0, length: Number.POSITIVE_INFINITY, zero: false, allocated: true }],
    ]) {
      expect(() => normalizeExtents(answer, 0, 10, 'd')).toThrow(expect.objectContaining({ code: 'EIO' }));
    }
  });

  it('errs on the safe side with flags that are not booleans', () => {
    const loose = [{ offset: 0, length: 10, zero: 1, allocated: undefined }] as unknown as BlockExtent[];
    expect(normalizeExtents(loose, 0, 10)).toEqual([{ offset: 0, length: 10, zero: false, allocated: true }]);
  });
});
