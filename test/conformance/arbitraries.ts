/**
 * fast-check generators of requests a driver must accept: every offset and length is a multiple
 * of the driver's minBlockSize and inside the device. Offsets cluster around the boundaries where
 * implementations usually split work (sectors, pages, common chunk sizes, the device end).
 */
import fc from 'fast-check';
import type { SuiteContext } from './context.js';

/** A request range. */
export interface Range {
  readonly offset: number;
  readonly length: number;
}

/** Boundaries worth crossing: 512 B, 4 KiB, 64 KiB, 1 MiB, and the end of the device. */
export function boundaries(ctx: SuiteContext): number[] {
  const out = [512, 4096, 65536, 1048576].filter((b) => b % ctx.unit === 0 && b < ctx.size);
  out.push(ctx.size);
  return out;
}

/**
 * Non-empty aligned ranges inside the device, at most `maxLength` bytes (rounded down to the
 * unit, at least one unit). Mostly short (up to 8 KiB), sometimes up to `maxLength`.
 */
export function rangeArb(ctx: SuiteContext, maxLength: number): fc.Arbitrary<Range> {
  const u = ctx.unit;
  const blocks = Math.floor(ctx.size / u);
  const maxBlocks = Math.max(1, Math.floor(Math.min(maxLength, ctx.size) / u));
  const shortBlocks = Math.max(1, Math.min(maxBlocks, Math.floor(8192 / u)));
  const lengthBlocks = fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 1, max: shortBlocks }) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: maxBlocks }) },
  );
  const nearBoundary = fc
    .tuple(fc.constantFrom(...boundaries(ctx)), fc.integer({ min: -8, max: 8 }))
    .map(([b, delta]) => b / u + delta);
  const offsetBlocks = fc.oneof(fc.integer({ min: 0, max: blocks - 1 }), nearBoundary);
  return fc.tuple(offsetBlocks, lengthBlocks).map(([o, n]) => {
    const start = Math.min(Math.max(o, 0), blocks - 1);
    return { offset: start * u, length: Math.min(n, blocks - start) * u };
  });
}

/** A range for reads and writes: at most the longest request the driver accepts. */
export function ioRangeArb(ctx: SuiteContext): fc.Arbitrary<Range> {
  return rangeArb(ctx, ctx.maxIo);
}

/**
 * Reads and writes aligned to a common allocation unit (512 B, 4 KiB or 64 KiB, when the device
 * and the longest request allow): the requests that replace whole chunks of a chunked store,
 * which random byte ranges hardly ever are.
 */
export function alignedIoRangeArb(ctx: SuiteContext): fc.Arbitrary<Range> {
  const units = [512, 4096, 65536].filter((g) => g % ctx.unit === 0 && g <= ctx.maxIo && g <= ctx.size);
  if (units.length === 0) return ioRangeArb(ctx);
  return fc
    .constantFrom(...units)
    .chain((g) => {
      const slots = Math.floor(ctx.size / g);
      // Up to the longest request: a store may treat runs of whole units differently (a fast path).
      const maxLen = Math.max(1, Math.floor(ctx.maxIo / g));
      return fc.tuple(fc.constant(g), fc.integer({ min: 0, max: slots - 1 }), fc.integer({ min: 1, max: maxLen }));
    })
    .map(([g, slot, n]) => ({ offset: slot * g, length: Math.min(n, Math.floor(ctx.size / g) - slot) * g }));
}

/** A range for discard, writeZeroes and blockStatus, which have no length limit. */
export function anyRangeArb(ctx: SuiteContext): fc.Arbitrary<Range> {
  return rangeArb(ctx, ctx.size);
}

/** True when the two ranges share at least one byte. */
export function overlaps(a: Range, b: Range): boolean {
  return a.offset < b.offset + b.length && b.offset < a.offset + a.length;
}
