/**
 * Groups `read-write`, `unaligned`, `never-written` and `read-into`: data written comes back
 * exactly, in its place and nowhere else, whatever the alignment, the boundaries crossed or the
 * buffer it is read into.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { alignedIoRangeArb, boundaries, ioRangeArb, type Range } from './arbitraries.js';
import { expectBytes, expectZeros, flushIfAble, pattern, readAll, readFilled, writeAll, writeChecked } from './checks.js';
import type { BlockDriver } from '../../src/driver.js';
import type { SuiteContext } from './context.js';

const NEEDS_WRITE = '[needs canWrite]';

/** Registers the `read-write` tests. */
export function readWriteTests(ctx: SuiteContext): void {
  const { unit, maxIo, size, timeout, numRuns } = ctx;
  const ro = !ctx.caps.canWrite;

  it.skipIf(ro)(`reads back what was written, and the bytes around it stay zero ${NEEDS_WRITE}`, async () => {
    await fc.assert(
      // Random byte ranges, and whole allocation units (which random ranges hardly ever are).
      fc.asyncProperty(fc.oneof(ioRangeArb(ctx), alignedIoRangeArb(ctx)), fc.nat(), fc.boolean(), async (r, seed, fua) => {
        await ctx.withDriver(async (d) => {
          const data = await writeChecked(d, r.offset, pattern(r.length, seed), { fua });
          expectBytes(await d.read(r.offset, r.length), data, 'read after write', r.offset);
          expectBytes(await readFilled(d, r.offset, r.length), data, 'readInto after write', r.offset);
          if (r.offset >= unit) expectZeros(await readFilled(d, r.offset - unit, unit), 'unit before the write', r.offset - unit);
          const end = r.offset + r.length;
          if (end + unit <= size) expectZeros(await readFilled(d, end, unit), 'unit after the write', end);
        });
      }),
      { numRuns },
    );
  }, timeout);

  it.skipIf(ro)(`a later write wins where two writes overlap ${NEEDS_WRITE}`, async () => {
    await ctx.withDriver(async (d) => {
      const a = pattern(8 * unit, 1);
      const b = pattern(4 * unit, 2);
      await d.write(0, a);
      await d.write(2 * unit, b);
      const expected = a.slice();
      expected.set(b, 2 * unit);
      expectBytes(await readFilled(d, 0, 8 * unit), expected, 'overlapping writes');
    });
  }, timeout);

  it.skipIf(ro)(`writes the whole device and reads it back ${NEEDS_WRITE}`, async () => {
    await ctx.withDriver(async (d) => {
      const data = pattern(size, 3);
      await writeAll(d, 0, data, maxIo);
      expectBytes(await readAll(d, 0, size, maxIo), data, 'whole device');
    });
  }, timeout);

  it.skipIf(ro)(`neither keeps the caller's buffer after a write nor shares its own after a read ${NEEDS_WRITE}`, async () => {
    await ctx.withDriver(async (d) => {
      const data = pattern(2 * unit, 4);
      const copy = data.slice();
      await d.write(unit, data);
      data.fill(0x55);
      // A driver that kept the buffer might only read it again when it flushes.
      await flushIfAble(d);
      const first = await d.read(unit, 2 * unit);
      expectBytes(first, copy, 'caller changed its buffer after the write');
      // The buffer owns its memory (never a slice of a shared pool), so it can be transferred.
      expect(first.byteOffset, 'read buffer byteOffset').toBe(0);
      expect(first.buffer.byteLength, 'read buffer owns exactly its bytes').toBe(2 * unit);
      first.fill(0x66);
      expectBytes(await d.read(unit, 2 * unit), copy, 'caller changed a returned buffer');
    });
  }, timeout);
}

/** Ranges that straddle each interesting boundary, aligned to the unit and inside the device. */
function straddling(ctx: SuiteContext): Range[] {
  const u = ctx.unit;
  const shapes: Array<[number, number]> =
    u === 1 ? [[-1, 2], [-3, 7], [-4097, 8195], [-12345, 12345]] : [[-u, 2 * u], [-3 * u, 5 * u], [-8 * u, 8 * u]];
  const out: Range[] = [];
  for (const b of boundaries(ctx)) {
    for (const [delta, length] of shapes) {
      const offset = b + delta;
      if (offset >= 0 && offset + length <= ctx.size) out.push({ offset, length });
    }
  }
  return out;
}

/** Registers the `unaligned` tests. */
export function unalignedTests(ctx: SuiteContext): void {
  const { unit, maxIo, size, timeout } = ctx;
  const ro = !ctx.caps.canWrite;

  it.skipIf(ro)(`requests straddling 512 B, 4 KiB, 64 KiB, 1 MiB and ending at the device end land exactly ${NEEDS_WRITE}`, async () => {
    await ctx.withDriver(async (d) => {
      const model = new Uint8Array(size);
      let seed = 100;
      for (const r of straddling(ctx)) {
        const data = pattern(r.length, seed++);
        await d.write(r.offset, data);
        model.set(data, r.offset);
        expectBytes(await readFilled(d, r.offset, r.length), data, `straddling write ${r.offset}+${r.length}`, r.offset);
      }
      expectBytes(await readAll(d, 0, size, maxIo), model, 'whole device after straddling writes');
    });
  }, timeout);

  it.skipIf(ro || maxIo <= ctx.limits.maxTransfer)(
    `a request longer than maxTransfer is split and lands intact ${NEEDS_WRITE} [needs maxBlockSize > maxTransfer]`,
    async () => {
      await ctx.withDriver(async (d) => {
        // Start one unit in, so the pieces do not line up with maxTransfer-sized blocks.
        const length = Math.min(maxIo, size - unit);
        const data = pattern(length, 5);
        await d.write(unit, data);
        expectBytes(await d.read(unit, length), data, 'split request', unit);
        expectZeros(await readFilled(d, 0, unit), 'unit before the split request');
      });
    },
    timeout,
  );
}

/** Registers the `never-written` tests. */
export function neverWrittenTests(ctx: SuiteContext): void {
  const { maxIo, size, timeout, numRuns } = ctx;

  it('a fresh device reads as zeros from start to end', async () => {
    await ctx.withDriver(async (d) => {
      expectZeros(await readAll(d, 0, size, maxIo), 'fresh device');
    });
  }, timeout);

  it('any range of a fresh device reads as zeros', async () => {
    await ctx.withDriver(async (d) => {
      await fc.assert(
        fc.asyncProperty(ioRangeArb(ctx), fc.boolean(), async (r, into) => {
          const bytes = into ? await readFilled(d, r.offset, r.length) : await d.read(r.offset, r.length);
          expectZeros(bytes, `fresh range ${r.offset}+${r.length} (${into ? 'readInto' : 'read'})`, r.offset);
        }),
        { numRuns },
      );
    });
  }, timeout);
}

/** Registers the `read-into` tests. */
export function readIntoTests(ctx: SuiteContext): void {
  const { unit, timeout } = ctx;
  const length = 4 * unit;
  const seedData = async (d: BlockDriver): Promise<Uint8Array> => {
    if (!ctx.caps.canWrite) return new Uint8Array(length);
    const data = pattern(length, 6);
    await d.write(unit, data);
    return data;
  };

  it('readInto fills a whole caller buffer with what read returns', async () => {
    await ctx.withDriver(async (d) => {
      const expected = await seedData(d);
      const target = new Uint8Array(length).fill(0xee);
      await d.readInto(unit, target);
      expectBytes(target, expected, 'readInto');
      expectBytes(await d.read(unit, length), expected, 'read');
    });
  }, timeout);

  it('readInto fills a subarray view at a nonzero byteOffset and nothing around it', async () => {
    await ctx.withDriver(async (d) => {
      const expected = await seedData(d);
      const backing = new Uint8Array(length + 20).fill(0xee);
      const view = backing.subarray(7, 7 + length);
      expect(view.byteOffset).toBe(7);
      await d.readInto(unit, view);
      expectBytes(view, expected, 'readInto a view');
      expectBytes(backing.subarray(0, 7), new Uint8Array(7).fill(0xee), 'bytes before the view');
      expectBytes(backing.subarray(7 + length), new Uint8Array(13).fill(0xee), 'bytes after the view');
    });
  }, timeout);

  it('readInto fills a Node Buffer (small ones come from a pool, at a nonzero byteOffset)', async () => {
    await ctx.withDriver(async (d) => {
      const expected = await seedData(d);
      const target = Buffer.allocUnsafe(length).fill(0xee);
      await d.readInto(unit, target);
      expectBytes(target, expected, 'readInto a Buffer');
    });
  }, timeout);
}
