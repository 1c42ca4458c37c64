/**
 * Group `concurrency`: many requests in flight at once. Overlapping writes may land in any order
 * but never produce a byte no writer wrote; disjoint writes all land; reads of stable data are
 * not disturbed by writes elsewhere.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { boundaries } from './arbitraries.js';
import { expectBytes, pattern, readAll } from './checks.js';
import { alignDown, type SuiteContext } from './context.js';

const NEEDS_WRITE = '[needs canWrite]';

/** Registers the `concurrency` tests. */
export function concurrencyTests(ctx: SuiteContext): void {
  const { unit, size, maxIo, timeout, numRuns } = ctx;
  const ro = !ctx.caps.canWrite;
  // A window around a boundary where drivers split work, small enough to check byte by byte.
  const window = Math.max(unit, alignDown(Math.min(size, maxIo, 64 * 1024), unit));
  const windowBlocks = window / unit;
  const windowStart = fc
    .constantFrom(...boundaries(ctx))
    .map((b) => Math.min(Math.max(0, alignDown(b - window / 2, unit)), size - window));
  const maxIoBlocks = Math.max(1, Math.floor(maxIo / unit));

  it.skipIf(ro)(`overlapping concurrent writes and writeZeroes leave every byte as one of the writers wrote it ${NEEDS_WRITE}`, async () => {
    const writer = fc.record({
      start: fc.nat(windowBlocks - 1),
      blocks: fc.integer({ min: 1, max: Math.min(windowBlocks, maxIoBlocks) }),
      // About one request in four zeroes its range instead of writing.
      zero: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
    });
    await fc.assert(
      fc.asyncProperty(windowStart, fc.array(writer, { minLength: 2, maxLength: 12 }), async (base, writers) => {
        await ctx.withDriver(async (d) => {
          const ranges = writers.map((w, i) => {
            const offset = base + w.start * unit;
            const length = Math.min(w.blocks * unit, base + window - offset);
            return { offset, length, value: w.zero ? 0 : i + 1 };
          });
          await Promise.all(
            ranges.map((r) =>
              r.value === 0 ? d.writeZeroes(r.offset, r.length) : d.write(r.offset, new Uint8Array(r.length).fill(r.value)),
            ),
          );
          const bytes = await readAll(d, base, window, maxIo);
          // Bit i of covers[j]: request i covers byte j. Value 0 is allowed where a zeroing
          // request (or none at all) covers the byte, value v where writer v - 1 does.
          const covers = new Uint16Array(window);
          const zeroed = new Uint8Array(window);
          ranges.forEach((r, i) => {
            for (let j = r.offset - base; j < r.offset - base + r.length; j++) {
              if (r.value === 0) zeroed[j] = 1;
              else covers[j] |= 1 << i;
            }
          });
          for (let j = 0; j < window; j++) {
            const v = bytes[j];
            const ok = v === 0 ? zeroed[j] === 1 || covers[j] === 0 : v <= ranges.length && (covers[j] & (1 << (v - 1))) !== 0;
            if (!ok) {
              const wrote = ranges.filter((r) => base + j >= r.offset && base + j < r.offset + r.length).map((r) => r.value);
              expect.fail(`byte at ${base + j} is ${v}; the requests covering it wrote ${wrote.join(', ') || 'nothing'}`);
            }
          }
        });
      }),
      { numRuns },
    );
  }, timeout);

  it.skipIf(ro)(`disjoint concurrent writes all land exactly ${NEEDS_WRITE}`, async () => {
    const pieces = fc.array(fc.integer({ min: 1, max: Math.min(16, maxIoBlocks) }), { minLength: 2, maxLength: 24 });
    await fc.assert(
      fc.asyncProperty(windowStart, pieces, fc.nat(), async (base, blocks, seed) => {
        await ctx.withDriver(async (d) => {
          const total = Math.min(blocks.reduce((a, b) => a + b, 0) * unit, size - base);
          const expected = pattern(total, seed);
          const writes: Array<Promise<void>> = [];
          for (let pos = 0, i = 0; pos < total; pos += blocks[i] * unit, i++) {
            const end = Math.min(pos + blocks[i] * unit, total);
            writes.push(d.write(base + pos, expected.subarray(pos, end)));
          }
          await Promise.all(writes);
          expectBytes(await readAll(d, base, total, maxIo), expected, 'disjoint concurrent writes', base);
        });
      }),
      { numRuns },
    );
  }, timeout);

  it.skipIf(ro)(`reads racing writes to other ranges return stable data ${NEEDS_WRITE}`, async () => {
    await ctx.withDriver(async (d) => {
      const length = Math.min(16 * unit, maxIo, alignDown(size / 2, unit));
      const stable = pattern(length, 80);
      await d.write(0, stable);
      const other = alignDown(size - length, unit);
      const ops: Array<Promise<unknown>> = [];
      for (let i = 0; i < 16; i++) {
        ops.push(d.write(other, pattern(length, 81 + i)));
        ops.push(d.read(0, length).then((bytes) => expectBytes(bytes, stable, `read ${i} racing writes`)));
      }
      await Promise.all(ops);
    });
  }, timeout);
}
