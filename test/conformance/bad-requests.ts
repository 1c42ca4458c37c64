/**
 * Groups `errors` and `zero-length`: every bad request fails with the code NBD peers expect and
 * changes nothing; an empty request succeeds and changes nothing.
 */
import { expect, it } from 'vitest';
import type { BlockDriver } from '../../src/driver.js';
import { expectBytes, expectCode, expectTypeError, expectZeros, pattern, readFilled } from './checks.js';
import type { SuiteContext } from './context.js';

type RangeOp = [string, (d: BlockDriver, offset: number, length: number) => Promise<unknown>];

/** Every range-taking operation, as (name, call) pairs; writes build a buffer of `length`. */
function rangeOps(withWrites: boolean): RangeOp[] {
  const reads: RangeOp[] = [
    ['read', (d, o, n) => d.read(o, n)],
    ['readInto', (d, o, n) => d.readInto(o, new Uint8Array(Number.isSafeInteger(n) && n >= 0 ? n : 1))],
    ['blockStatus', (d, o, n) => d.blockStatus(o, n)],
    ['cache', (d, o, n) => d.cache(o, n)],
  ];
  if (!withWrites) return reads;
  return [
    ...reads,
    ['write', (d, o, n) => d.write(o, new Uint8Array(Number.isSafeInteger(n) && n >= 0 ? n : 1))],
    ['discard', (d, o, n) => d.discard(o, n)],
    ['writeZeroes', (d, o, n) => d.writeZeroes(o, n)],
  ];
}

/** Registers the `errors` tests. */
export function errorTests(ctx: SuiteContext): void {
  const { unit, size, timeout } = ctx;
  const rw = ctx.caps.canWrite;
  const ro = !rw;

  it('reads, blockStatus, cache and discard past the end fail with EINVAL', async () => {
    await ctx.withDriver(async (d) => {
      for (const [offset, length] of [[size, unit], [size - unit, 2 * unit], [size + unit, 0]]) {
        await expectCode(() => d.read(offset, length), 'EINVAL', `read(${offset}, ${length})`);
        await expectCode(() => d.blockStatus(offset, length), 'EINVAL', `blockStatus(${offset}, ${length})`);
        await expectCode(() => d.cache(offset, length), 'EINVAL', `cache(${offset}, ${length})`);
        if (rw) await expectCode(() => d.discard(offset, length), 'EINVAL', `discard(${offset}, ${length})`);
      }
    });
  }, timeout);

  it.skipIf(ro)('writes and writeZeroes past the end fail with ENOSPC and write nothing [needs canWrite]', async () => {
    await ctx.withDriver(async (d) => {
      await expectCode(() => d.write(size - unit, pattern(2 * unit, 40)), 'ENOSPC', 'write straddling the end');
      await expectCode(() => d.write(size, pattern(unit, 41)), 'ENOSPC', 'write at the end');
      await expectCode(() => d.writeZeroes(size - unit, 2 * unit), 'ENOSPC', 'writeZeroes straddling the end');
      expectZeros(await readFilled(d, size - unit, unit), 'last unit after refused writes', size - unit);
      const data = pattern(unit, 42);
      await d.write(size - unit, data);
      await expectCode(() => d.writeZeroes(size - unit, 2 * unit), 'ENOSPC', 'writeZeroes straddling the end');
      expectBytes(await readFilled(d, size - unit, unit), data, 'last unit after a refused writeZeroes', size - unit);
    });
  }, timeout);

  it('negative, fractional, NaN, infinite and unsafe offsets and lengths fail with EINVAL', async () => {
    const bad = [-1, -unit, 0.5, unit + 0.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53, Number.MAX_VALUE];
    await ctx.withDriver(async (d) => {
      for (const [name, call] of rangeOps(rw)) {
        for (const value of bad) {
          await expectCode(() => call(d, value, unit), 'EINVAL', `${name} at offset ${value}`);
          if (name !== 'write' && name !== 'readInto') {
            await expectCode(() => call(d, 0, value), 'EINVAL', `${name} of length ${value}`);
          }
        }
      }
    });
  }, timeout);

  it('arguments of the wrong type fail with a TypeError', async () => {
    await ctx.withDriver(async (d) => {
      const anyD = d as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
      const calls: Array<[string, () => unknown]> = [
        ['read("0", 1)', () => anyD.read('0', 1)],
        ['read(0, "1")', () => anyD.read(0, '1')],
        ['read(0n, 1)', () => anyD.read(0n, 1)],
        ['read(undefined, 1)', () => anyD.read(undefined, 1)],
        ['readInto(0, ArrayBuffer)', () => anyD.readInto(0, new ArrayBuffer(4))],
        ['readInto(0, null)', () => anyD.readInto(0, null)],
        ['readInto(0, number[])', () => anyD.readInto(0, [0, 0])],
        ['write(0, "abc")', () => anyD.write(0, 'abc')],
        ['write(0, number[])', () => anyD.write(0, [1, 2, 3])],
        ['write(0, ArrayBuffer)', () => anyD.write(0, new ArrayBuffer(4))],
        ['write("0", bytes)', () => anyD.write('0', new Uint8Array(1))],
        ['discard(0, null)', () => anyD.discard(0, null)],
        ['writeZeroes(undefined, 1)', () => anyD.writeZeroes(undefined, 1)],
        ['blockStatus({}, 1)', () => anyD.blockStatus({}, 1)],
        ['cache(0, "1")', () => anyD.cache(0, '1')],
      ];
      for (const [what, call] of calls) await expectTypeError(call, what);
    });
  }, timeout);

  const overflow = ctx.limits.maxBlockSize + unit <= size;
  it.skipIf(!overflow)('reads and writes longer than maxBlockSize fail with EOVERFLOW; other ops accept them [needs maxBlockSize < size]', async () => {
    await ctx.withDriver(async (d) => {
      const length = ctx.limits.maxBlockSize + unit;
      await expectCode(() => d.read(0, length), 'EOVERFLOW', `read of ${length}`);
      await expectCode(() => d.readInto(0, new Uint8Array(length)), 'EOVERFLOW', `readInto of ${length}`);
      if (rw) {
        await expectCode(() => d.write(0, new Uint8Array(length).fill(1)), 'EOVERFLOW', `write of ${length}`);
        expectZeros(await readFilled(d, 0, unit), 'first unit after a refused long write');
        await d.writeZeroes(0, length);
        await d.discard(0, length);
      }
      expect((await d.blockStatus(0, length)).length).toBeGreaterThan(0);
      await d.cache(0, length);
    });
  }, timeout);

  it.skipIf(unit === 1)('misaligned offsets and lengths fail with EINVAL [needs minBlockSize > 1]', async () => {
    await ctx.withDriver(async (d) => {
      for (const [name, call] of rangeOps(rw)) {
        for (const [offset, length] of [[1, unit], [unit / 2, unit], [0, unit + 1], [unit, unit / 2]]) {
          await expectCode(() => call(d, offset, length), 'EINVAL', `${name}(${offset}, ${length})`);
        }
      }
    });
  }, timeout);

  it.skipIf(rw)('a read-only driver refuses write, discard and writeZeroes with EPERM [needs !canWrite]', async () => {
    await ctx.withDriver(async (d) => {
      await expectCode(() => d.write(0, pattern(unit, 43)), 'EPERM', 'write');
      await expectCode(() => d.write(0, new Uint8Array(0)), 'EPERM', 'empty write');
      await expectCode(() => d.discard(0, unit), 'EPERM', 'discard');
      await expectCode(() => d.writeZeroes(0, unit), 'EPERM', 'writeZeroes');
      await expectCode(() => d.writeZeroes(0, unit, { fastZero: true }), 'EPERM', 'fast writeZeroes');
      expectZeros(await readFilled(d, 0, unit), 'data after refused writes');
      await d.flush();
    });
  }, timeout);
}

/** Registers the `zero-length` tests. */
export function zeroLengthTests(ctx: SuiteContext): void {
  const { unit, size, timeout } = ctx;
  const rw = ctx.caps.canWrite;

  it('empty requests at the start and at the end succeed and return nothing', async () => {
    await ctx.withDriver(async (d) => {
      for (const offset of [0, size]) {
        expect((await d.read(offset, 0)).length, `read(${offset}, 0)`).toBe(0);
        await d.readInto(offset, new Uint8Array(0));
        expect(await d.blockStatus(offset, 0), `blockStatus(${offset}, 0)`).toEqual([]);
        await d.cache(offset, 0);
      }
    });
  }, timeout);

  it.skipIf(!rw)('empty write, writeZeroes and discard succeed and change nothing [needs canWrite]', async () => {
    await ctx.withDriver(async (d) => {
      const data = pattern(4 * unit, 44);
      await d.write(0, data);
      for (const offset of [0, unit, 4 * unit, size]) {
        await d.write(offset, new Uint8Array(0), { fua: true });
        await d.writeZeroes(offset, 0, { mayUnmap: true });
        await d.discard(offset, 0);
      }
      expectBytes(await readFilled(d, 0, 4 * unit), data, 'data after empty requests');
      expect(d.inFlight).toBe(0);
    });
  }, timeout);
}
