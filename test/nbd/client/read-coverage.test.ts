import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ReadCoverage } from '../../../src/nbd/client/read-coverage.js';

/** A request and a partition of it into chunks, in shuffled arrival order. */
const partitioned = fc
  .record({
    offset: fc.nat(1e9),
    cuts: fc.uniqueArray(fc.integer({ min: 1, max: 9999 }), { maxLength: 12 }),
    length: fc.integer({ min: 1, max: 10000 }),
  })
  .chain(({ offset, cuts, length }) => {
    const points = [0, ...cuts.filter((c) => c < length).sort((a, b) => a - b), length];
    const chunks = points.slice(1).map((end, i) => ({ offset: offset + points[i], length: end - points[i] }));
    return fc.record({ offset: fc.constant(offset), length: fc.constant(length), chunks: fc.shuffledSubarray(chunks, { minLength: chunks.length, maxLength: chunks.length }) });
  });

describe('ReadCoverage', () => {
  it('accepts any partition of the request in any order and reports completion only at the end', () => {
    fc.assert(
      fc.property(partitioned, ({ offset, length, chunks }) => {
        const cov = new ReadCoverage(offset, length);
        chunks.forEach((c, i) => {
          expect(cov.complete).toBe(false);
          expect(cov.add(c.offset, c.length)).toBeUndefined();
          expect(cov.complete).toBe(i === chunks.length - 1);
        });
        expect(cov.covered).toBe(length);
      }),
      { numRuns: 300 },
    );
  });

  it('leaves a reply incomplete when any chunk is missing', () => {
    fc.assert(
      fc.property(partitioned, fc.nat(), ({ offset, length, chunks }, k) => {
        const cov = new ReadCoverage(offset, length);
        const skip = k % chunks.length;
        chunks.forEach((c, i) => {
          if (i !== skip) expect(cov.add(c.offset, c.length)).toBeUndefined();
        });
        expect(cov.complete).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('flags a chunk that overlaps one already received, whatever the order', () => {
    fc.assert(
      fc.property(partitioned, fc.nat(), fc.nat(), fc.nat(), ({ offset, length, chunks }, a, b, c) => {
        const cov = new ReadCoverage(offset, length);
        const upto = (a % chunks.length) + 1;
        for (const ch of chunks.slice(0, upto)) cov.add(ch.offset, ch.length);
        // A chunk containing at least one byte of an accepted chunk.
        const victim = chunks[b % upto];
        const inside = victim.offset + (c % victim.length);
        const start = Math.max(offset, inside - (b % 7));
        const end = Math.min(offset + length, inside + 1 + (c % 5));
        const before = cov.covered;
        expect(cov.add(start, end - start)).toMatch(/overlaps/);
        expect(cov.covered).toBe(before);
      }),
      { numRuns: 300 },
    );
  });

  it('flags chunks outside the request and empty chunks', () => {
    fc.assert(
      fc.property(fc.nat(1e6), fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 100 }), (offset, length, d) => {
        const cov = new ReadCoverage(offset + 100, length);
        expect(cov.add(offset + 100 - Math.min(d, 100), Math.min(d, 100) + 1)).toMatch(/outside/);
        expect(cov.add(offset + 100 + length - 1, 1 + d)).toMatch(/outside/);
        expect(cov.add(offset + 100, 0)).toMatch(/empty/);
        expect(cov.covered).toBe(0);
      }),
    );
  });

  it('starts over after reset', () => {
    const cov = new ReadCoverage(0, 10);
    expect(cov.add(0, 10)).toBeUndefined();
    cov.reset();
    expect(cov.complete).toBe(false);
    expect(cov.add(0, 10)).toBeUndefined();
    expect(cov.complete).toBe(true);
  });
});
