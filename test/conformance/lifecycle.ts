/**
 * Groups `lifecycle`, `fua-flush` and `abort`: closing drains what is in flight and refuses what
 * comes after; a closed driver refuses everything; FUA and flush succeed and keep data; an
 * aborted signal stops a request before it is dispatched.
 */
import { expect, it } from 'vitest';
import type { BlockDriver } from '../../src/driver.js';
import type { IoOptions } from '../../src/types.js';
import { expectBytes, expectCode, expectZeros, pattern } from './checks.js';
import type { SuiteContext } from './context.js';

type Op = [string, (d: BlockDriver, options?: IoOptions) => Promise<unknown>];

/** One call of every operation on a small range (writes only when the driver can write). */
function everyOp(unit: number, canWrite: boolean, length = unit): Op[] {
  const ops: Op[] = [
    ['read', (d, o) => d.read(0, length, o)],
    ['readInto', (d, o) => d.readInto(0, new Uint8Array(length), o)],
    ['flush', (d, o) => d.flush(o)],
    ['blockStatus', (d, o) => d.blockStatus(0, length, o)],
    ['cache', (d, o) => d.cache(0, length, o)],
  ];
  if (canWrite) {
    ops.push(
      ['write', (d, o) => d.write(0, pattern(length, 50), o)],
      ['discard', (d, o) => d.discard(0, length, o)],
      ['writeZeroes', (d, o) => d.writeZeroes(0, length, o)],
    );
  }
  return ops;
}

/** Registers the `lifecycle` tests. */
export function lifecycleTests(ctx: SuiteContext): void {
  const { unit, timeout } = ctx;
  const rw = ctx.caps.canWrite;

  it('close is idempotent, emits close once, and so does Symbol.asyncDispose', async () => {
    await ctx.withDriver(async (d) => {
      let events = 0;
      d.on('close', () => events++);
      const first = d.close();
      const second = d.close();
      await Promise.all([first, second]);
      await d.close();
      await d[Symbol.asyncDispose]();
      expect(d.state).toBe('closed');
      expect(events).toBe(1);
    });
    await ctx.withDriver(async (d) => {
      await d[Symbol.asyncDispose]();
      expect(d.state).toBe('closed');
    });
  }, timeout);

  it('a closed driver refuses every operation with ESHUTDOWN, empty ones included', async () => {
    await ctx.withDriver(async (d) => {
      await d.close();
      for (const [name, call] of [...everyOp(unit, true), ...everyOp(unit, true, 0)]) {
        await expectCode(() => call(d), 'ESHUTDOWN', `${name} after close`);
      }
    });
  }, timeout);

  it('requests issued after close() started fail with ESHUTDOWN; those in flight complete first', async () => {
    await ctx.withDriver(async (d) => {
      const data = pattern(8 * unit, 51);
      if (rw) await d.write(0, data);
      const expected = rw ? data : new Uint8Array(8 * unit);
      const settled: string[] = [];
      const track = <T>(name: string, p: Promise<T>): Promise<T> =>
        p.finally(() => settled.push(name));
      const reads = [0, 1, 2, 3].map((i) => track(`read ${i}`, d.read(0, 8 * unit)));
      const writes = rw ? [0, 1].map((i) => track(`write ${i}`, d.write(8 * unit, pattern(unit, 52 + i)))) : [];
      const flush = track('flush', d.flush());
      expect(d.inFlight).toBeGreaterThan(0);
      const closing = d.close().then(() => settled.push('close'));
      expect(d.state).toBe('closing');
      await expectCode(() => d.read(0, unit), 'ESHUTDOWN', 'read while closing');
      await expectCode(() => d.flush(), 'ESHUTDOWN', 'flush while closing');
      if (rw) await expectCode(() => d.write(0, pattern(unit, 53)), 'ESHUTDOWN', 'write while closing');
      for (const r of reads) expectBytes(await r, expected, 'read in flight during close');
      await Promise.all([...writes, flush]);
      await closing;
      expect(settled[settled.length - 1], `order of completion: ${settled.join(', ')}`).toBe('close');
      expect(d.state).toBe('closed');
      expect(d.inFlight).toBe(0);
    });
  }, timeout);
}

/** Registers the `fua-flush` tests. */
export function fuaFlushTests(ctx: SuiteContext): void {
  const { unit, timeout } = ctx;
  const ro = !ctx.caps.canWrite;

  it('flush succeeds on a fresh device, repeatedly and concurrently', async () => {
    await ctx.withDriver(async (d) => {
      await d.flush();
      await Promise.all([d.flush(), d.flush(), d.flush()]);
    });
  }, timeout);

  it.skipIf(ro)('FUA writes, zeroes and discards succeed, and the data is there after a flush [needs canWrite]', async () => {
    await ctx.withDriver(async (d) => {
      const data = pattern(8 * unit, 60);
      await d.write(0, data, { fua: true });
      expectBytes(await d.read(0, 8 * unit), data, 'after a FUA write');
      await d.writeZeroes(2 * unit, unit, { fua: true });
      await d.discard(6 * unit, 2 * unit, { fua: true });
      await d.write(8 * unit, data);
      await d.flush();
      expectBytes(await d.read(8 * unit, 8 * unit), data, 'after flush');
      expectZeros(await d.read(2 * unit, unit), 'after a FUA writeZeroes', 2 * unit);
      expectBytes(await d.read(0, 2 * unit), data.subarray(0, 2 * unit), 'untouched by FUA zeroing');
    });
  }, timeout);
}

/** Registers the `abort` tests. */
export function abortTests(ctx: SuiteContext): void {
  const { unit, timeout } = ctx;
  const rw = ctx.caps.canWrite;

  it('an already aborted signal fails every operation with ECANCELED and dispatches nothing', async () => {
    await ctx.withDriver(async (d) => {
      const data = pattern(unit, 70);
      if (rw) await d.write(0, data);
      const controller = new AbortController();
      controller.abort(new Error('caller gave up'));
      for (const [name, call] of everyOp(unit, rw)) {
        await expectCode(() => call(d, { signal: controller.signal }), 'ECANCELED', `${name} with an aborted signal`);
      }
      expect(d.state).toBe('open');
      expect(d.inFlight).toBe(0);
      if (rw) expectBytes(await d.read(0, unit), data, 'data after aborted write, discard and writeZeroes');
    });
  }, timeout);

  it('a signal that is not aborted changes nothing', async () => {
    await ctx.withDriver(async (d) => {
      const { signal } = new AbortController();
      for (const [name, call] of everyOp(unit, rw)) {
        await call(d, { signal }).catch((err: unknown) => expect.fail(`${name} with a live signal: ${String(err)}`));
      }
      if (rw) expectZeros(await d.read(0, unit), 'after writeZeroes with a live signal');
    });
  }, timeout);
}
