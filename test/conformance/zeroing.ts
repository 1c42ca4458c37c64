/**
 * Groups `write-zeroes` and `discard`: zeroing makes exactly its range read as zeros in every
 * flavour; discard leaves each byte of its range as it was or zero (exactly zero when the
 * embedder says so) and never touches a byte outside it.
 */
import fc from 'fast-check';
import { it } from 'vitest';
import { anyRangeArb, ioRangeArb, type Range } from './arbitraries.js';
import { expectBytes, expectCode, expectOldOrZero, expectZeros, pattern, readAll, readFilled, writeAll } from './checks.js';
import type { SuiteContext } from './context.js';
import type { BlockDriver } from '../../src/driver.js';
import type { WriteZeroesOptions } from '../../src/types.js';

const NEEDS_WRITE = '[needs canWrite]';

/** Reads the smallest span covering both ranges, with its offset. */
async function readSpan(ctx: SuiteContext, d: BlockDriver, a: Range, b: Range): Promise<{ offset: number; bytes: Uint8Array }> {
  const offset = Math.min(a.offset, b.offset);
  const end = Math.max(a.offset + a.length, b.offset + b.length);
  return { offset, bytes: await readAll(d, offset, end - offset, ctx.maxIo) };
}

/** What the span holds after `data` was written at `w` and then range `z` zeroed (or discarded). */
function expectedSpan(offset: number, length: number, w: Range, data: Uint8Array, z: Range): Uint8Array {
  const out = new Uint8Array(length);
  out.set(data, w.offset - offset);
  out.fill(0, z.offset - offset, z.offset - offset + z.length);
  return out;
}

/** Registers the `write-zeroes` tests. */
export function writeZeroesTests(ctx: SuiteContext): void {
  const { unit, size, maxIo, timeout, numRuns } = ctx;
  const ro = !ctx.caps.canWrite;
  const fast = ctx.caps.canZero && ctx.caps.canFastZero;
  const flavours: Array<[string, WriteZeroesOptions]> = [
    ['plain', {}],
    ['mayUnmap', { mayUnmap: true }],
    ['fua', { fua: true }],
    ['mayUnmap + fua', { mayUnmap: true, fua: true }],
  ];

  for (const [label, options] of flavours) {
    it.skipIf(ro)(`writeZeroes (${label}) zeroes exactly its range ${NEEDS_WRITE}`, async () => {
      await ctx.withDriver(async (d) => {
        const window = { offset: 0, length: 16 * unit };
        const data = pattern(window.length, 10);
        await d.write(window.offset, data);
        // Read first: a driver that caches reads must drop what the zeroing changes.
        expectBytes(await readFilled(d, 0, window.length), data, 'before writeZeroes');
        const z = { offset: 4 * unit, length: 8 * unit };
        await d.writeZeroes(z.offset, z.length, options);
        expectBytes(await readFilled(d, 0, window.length), expectedSpan(0, window.length, window, data, z), `after writeZeroes (${label})`);
      });
    }, timeout);
  }

  it.skipIf(ro)(`writeZeroes over any range reads as zeros and spares the rest ${NEEDS_WRITE}`, async () => {
    await fc.assert(
      fc.asyncProperty(ioRangeArb(ctx), anyRangeArb(ctx), fc.boolean(), fc.nat(), async (w, z, mayUnmap, seed) => {
        await ctx.withDriver(async (d) => {
          const data = pattern(w.length, seed);
          await d.write(w.offset, data);
          await readSpan(ctx, d, w, z); // fills any read cache the zeroing must then update
          await d.writeZeroes(z.offset, z.length, { mayUnmap });
          const span = await readSpan(ctx, d, w, z);
          expectBytes(span.bytes, expectedSpan(span.offset, span.bytes.length, w, data, z), 'span after writeZeroes', span.offset);
        });
      }),
      { numRuns },
    );
  }, timeout);

  it.skipIf(ro)(`writeZeroes of the whole device (mayUnmap) leaves it all zeros ${NEEDS_WRITE}`, async () => {
    await ctx.withDriver(async (d) => {
      await writeAll(d, 0, pattern(size, 11), maxIo);
      await d.writeZeroes(0, size, { mayUnmap: true });
      expectZeros(await readAll(d, 0, size, maxIo), 'device after writeZeroes');
    });
  }, timeout);

  it.skipIf(ro || !fast)(`writeZeroes with fastZero zeroes the range, or fails with ENOTSUP and changes nothing ${NEEDS_WRITE} [needs canZero and canFastZero]`, async () => {
    await ctx.withDriver(async (d) => {
      const data = pattern(8 * unit, 12);
      await d.write(0, data);
      // A driver that can fast-zero may still refuse a range it cannot zero quickly (the NBD spec's rule).
      const refused = await d.writeZeroes(unit, 6 * unit, { fastZero: true }).then(
        () => false,
        (err: unknown) => {
          if ((err as { code?: unknown }).code !== 'ENOTSUP') throw err;
          return true;
        },
      );
      if (refused) expectBytes(await readFilled(d, 0, 8 * unit), data, 'data after a refused fast zero');
      else {
        expectZeros(await readFilled(d, unit, 6 * unit), 'after fast zero', unit);
        expectBytes(await readFilled(d, 0, unit), data.subarray(0, unit), 'before the fast zero');
        expectBytes(await readFilled(d, 7 * unit, unit), data.subarray(7 * unit), 'after the fast zero', 7 * unit);
      }
    });
  }, timeout);

  it.skipIf(ro || fast)(`writeZeroes with fastZero fails with ENOTSUP and changes nothing ${NEEDS_WRITE} [needs !canFastZero]`, async () => {
    await ctx.withDriver(async (d) => {
      const data = pattern(8 * unit, 13);
      await d.write(0, data);
      await expectCode(() => d.writeZeroes(unit, 6 * unit, { fastZero: true }), 'ENOTSUP', 'fastZero');
      expectBytes(await readFilled(d, 0, 8 * unit), data, 'data after a refused fast zero');
    });
  }, timeout);
}

/** Registers the `discard` tests. */
export function discardTests(ctx: SuiteContext): void {
  const { unit, size, maxIo, timeout, numRuns } = ctx;
  const ro = !ctx.caps.canWrite;
  const exact = ctx.discardReadsZeroes;
  const mode = exact ? 'zeros (discardReadsZeroes)' : 'old data or zeros';

  /** Checks the span after `data` at `w` and a discard of `z`. */
  const check = (span: { offset: number; bytes: Uint8Array }, w: Range, data: Uint8Array, z: Range): void => {
    const old = new Uint8Array(span.bytes.length);
    old.set(data, w.offset - span.offset);
    const zStart = z.offset - span.offset;
    const zEnd = zStart + z.length;
    expectBytes(span.bytes.subarray(0, zStart), old.subarray(0, zStart), 'before the discard', span.offset);
    expectBytes(span.bytes.subarray(zEnd), old.subarray(zEnd), 'after the discard', span.offset + zEnd);
    const inside = span.bytes.subarray(zStart, zEnd);
    if (exact) expectZeros(inside, 'discarded range', z.offset);
    else expectOldOrZero(inside, old.subarray(zStart, zEnd), 'discarded range', z.offset);
  };

  it.skipIf(ro)(`discard leaves ${mode} in its range and nothing changes outside ${NEEDS_WRITE}`, async () => {
    await ctx.withDriver(async (d) => {
      const w = { offset: 0, length: 16 * unit };
      const data = pattern(w.length, 20);
      await d.write(0, data);
      // Read first: a driver that caches reads must drop what the discard changes.
      expectBytes(await readFilled(d, 0, w.length), data, 'before discard');
      const z = { offset: 4 * unit, length: 8 * unit };
      await d.discard(z.offset, z.length);
      check({ offset: 0, bytes: await readFilled(d, 0, w.length) }, w, data, z);
    });
  }, timeout);

  it.skipIf(ro)(`discard of any range leaves ${mode} and spares the rest ${NEEDS_WRITE}`, async () => {
    await fc.assert(
      fc.asyncProperty(ioRangeArb(ctx), anyRangeArb(ctx), fc.boolean(), fc.nat(), async (w, z, fua, seed) => {
        await ctx.withDriver(async (d) => {
          // Written twice: a discard may leave the latest data or zeros, never the earlier data.
          await d.write(w.offset, pattern(w.length, seed + 1));
          const data = pattern(w.length, seed);
          await d.write(w.offset, data);
          await readSpan(ctx, d, w, z); // fills any read cache the discard must then update
          await d.discard(z.offset, z.length, { fua });
          check(await readSpan(ctx, d, w, z), w, data, z);
        });
      }),
      { numRuns },
    );
  }, timeout);

  it.skipIf(ro)(`after discarding the whole device, new writes read back exactly ${NEEDS_WRITE}`, async () => {
    await ctx.withDriver(async (d) => {
      await writeAll(d, 0, pattern(size, 21), maxIo);
      await d.discard(0, size);
      const data = pattern(size, 22);
      await writeAll(d, 0, data, maxIo);
      expectBytes(await readAll(d, 0, size, maxIo), data, 'device rewritten after discard');
    });
  }, timeout);
}
