/**
 * Group `block-status`: answers are well formed (non-empty, from the offset, contiguous, inside
 * the request, aligned, merged) and honest — an extent flagged zero really reads as zeros.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { anyRangeArb, ioRangeArb } from './arbitraries.js';
import { checkExtents, pattern, walkExtents } from './checks.js';
import type { SuiteContext } from './context.js';

/** Registers the `block-status` tests. */
export function blockStatusTests(ctx: SuiteContext): void {
  const { unit, size, maxIo, timeout, numRuns } = ctx;
  const ro = !ctx.caps.canWrite;

  it('walking a fresh device gives well-formed answers, and zero extents read as zeros', async () => {
    await ctx.withDriver(async (d) => {
      const extents = await walkExtents(d, 0, size, unit, maxIo);
      expect(extents.reduce((n, e) => n + e.length, 0)).toBe(size);
    });
  }, timeout);

  it('an answer starts at the requested offset and stays inside any requested range', async () => {
    await ctx.withDriver(async (d) => {
      await fc.assert(
        fc.asyncProperty(anyRangeArb(ctx), async (r) => {
          checkExtents(await d.blockStatus(r.offset, r.length), r.offset, r.length, unit);
        }),
        { numRuns },
      );
    });
  }, timeout);

  it.skipIf(ro)('after random writes, zeroes and discards every zero extent reads as zeros [needs canWrite]', async () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('write' as const), range: ioRangeArb(ctx), seed: fc.nat() }),
      fc.record({ kind: fc.constant('zero' as const), range: anyRangeArb(ctx), mayUnmap: fc.boolean() }),
      fc.record({ kind: fc.constant('discard' as const), range: anyRangeArb(ctx) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 6 }), anyRangeArb(ctx), async (ops, query) => {
        await ctx.withDriver(async (d) => {
          for (const o of ops) {
            const { offset, length } = o.range;
            if (o.kind === 'write') await d.write(offset, pattern(length, o.seed));
            else if (o.kind === 'zero') await d.writeZeroes(offset, length, { mayUnmap: o.mayUnmap });
            else await d.discard(offset, length);
          }
          await walkExtents(d, query.offset, query.length, unit, maxIo);
        });
      }),
      { numRuns },
    );
  }, timeout);

  it.skipIf(ro)('written data is never reported as zero [needs canWrite]', async () => {
    await ctx.withDriver(async (d) => {
      const r = { offset: 3 * unit, length: 5 * unit };
      await d.write(r.offset, pattern(r.length, 30));
      const extents = await walkExtents(d, 0, 16 * unit, unit, maxIo);
      for (const e of extents) {
        const overlapsData = e.offset < r.offset + r.length && r.offset < e.offset + e.length;
        if (overlapsData) {
          expect(e.zero, `extent ${e.offset}+${e.length} overlaps written data`).toBe(false);
          expect(e.allocated, `extent ${e.offset}+${e.length} overlaps written data: it is allocated`).toBe(true);
        }
      }
    });
  }, timeout);

  it.skipIf(ro)('after a discard and a zeroing of written data, an extent flagged zero reads as zeros [needs canWrite]', async () => {
    await ctx.withDriver(async (d) => {
      await d.write(0, pattern(16 * unit, 31));
      // A discard may leave the data (advisory); a zeroing must not. Either way, zero means zeros.
      await d.discard(2 * unit, 4 * unit);
      await d.writeZeroes(9 * unit, 4 * unit, { mayUnmap: true });
      const extents = await walkExtents(d, 0, 16 * unit, unit, maxIo);
      expect(extents.reduce((n, e) => n + e.length, 0)).toBe(16 * unit);
    });
  }, timeout);

  it.skipIf(ctx.caps.canBlockStatus)('without canBlockStatus the whole range is one data extent [needs !canBlockStatus]', async () => {
    await ctx.withDriver(async (d) => {
      const length = Math.min(size, 64 * unit);
      expect(await d.blockStatus(0, length)).toEqual([{ offset: 0, length, zero: false, allocated: true }]);
    });
  }, timeout);
}
