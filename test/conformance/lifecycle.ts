/**
 * Groups `lifecycle` and `fua-flush`: closing drains what is in flight and refuses what comes
 * after, whatever is in flight and whenever close() comes; a closed driver refuses everything;
 * FUA and flush succeed and keep data.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { BlockDriver } from '../../src/driver.js';
import { isBlockError } from '../../src/errors.js';
import { expectBytes, expectCode, expectZeros, pattern, readFilled, writeChecked } from './checks.js';
import type { SuiteContext } from './context.js';
import { everyOp, momentArb, opKinds, reach, settle, type OpKind } from './requests.js';

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

  it('close() while busy with any mix of requests: all accepted ones complete, later ones fail ESHUTDOWN, close resolves last', async () => {
    // Every request gets its own slot of two units, seeded first, so each has one right answer.
    const slot = 2 * unit;
    // Returns the request's own promise (the order check needs its first reaction); readInto
    // targets are kept in `targets` to check afterwards.
    const issue = (d: BlockDriver, kind: OpKind, i: number): Promise<unknown> => {
      const at = i * slot;
      switch (kind) {
        case 'read':
          return d.read(at, slot);
        case 'readInto': {
          const target = new Uint8Array(slot).fill(0xee);
          targets.set(i, target);
          return d.readInto(at, target);
        }
        case 'write':
          return d.write(at, pattern(slot, 200 + i));
        case 'writeZeroes':
          return d.writeZeroes(at, slot);
        case 'discard':
          return d.discard(at, slot);
        case 'flush':
          return d.flush();
        case 'blockStatus':
          return d.blockStatus(at, slot);
        case 'cache':
          return d.cache(at, slot);
      }
    };
    const targets = new Map<number, Uint8Array>();
    const kinds = fc.array(fc.constantFrom(...opKinds(rw)), { minLength: 1, maxLength: 12 });
    await fc.assert(
      fc.asyncProperty(kinds, momentArb, async (requests, moment) => {
        await ctx.withDriver(async (d) => {
          targets.clear();
          const seeded = rw ? pattern(requests.length * slot, 199) : new Uint8Array(requests.length * slot);
          if (rw) await d.write(0, seeded);
          const order: string[] = [];
          const started = requests.map((kind, i) => issue(d, kind, i).finally(() => order.push(`${kind} ${i}`)));
          await reach(moment);
          const closing = d.close().then(() => order.push('close'));
          expect(d.state, 'state right after close()').toBe('closing');
          for (const [name, call] of everyOp(unit, rw)) await expectCode(() => call(d), 'ESHUTDOWN', `${name} issued after close()`);
          const outcomes = await Promise.all(started.map(settle));
          outcomes.forEach((o, i) => {
            if (!o.ok) expect.fail(`${requests[i]} ${i}, accepted before close(), failed: ${isBlockError(o.error) ? o.error.code : ''} ${String(o.error)}`);
            if (requests[i] === 'read' || requests[i] === 'readInto') {
              const bytes = requests[i] === 'read' ? (o.value as Uint8Array) : (targets.get(i) as Uint8Array);
              expectBytes(bytes, seeded.subarray(i * slot, (i + 1) * slot), `${requests[i]} ${i} in flight during close`, i * slot);
            }
          });
          await closing;
          expect(order[order.length - 1], `order of completion: ${order.join(', ')}`).toBe('close');
          expect(d.state).toBe('closed');
          expect(d.inFlight).toBe(0);
        });
      }),
      { numRuns: ctx.numRuns },
    );
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
      const data = await writeChecked(d, 0, pattern(8 * unit, 60), { fua: true });
      expectBytes(await d.read(0, 8 * unit), data, 'after a FUA write');
      await d.writeZeroes(2 * unit, unit, { fua: true });
      await d.discard(6 * unit, 2 * unit, { fua: true });
      await d.write(8 * unit, data);
      await d.flush();
      expectBytes(await readFilled(d, 8 * unit, 8 * unit), data, 'after flush');
      expectZeros(await readFilled(d, 2 * unit, unit), 'after a FUA writeZeroes', 2 * unit);
      expectBytes(await readFilled(d, 0, 2 * unit), data.subarray(0, 2 * unit), 'untouched by FUA zeroing');
    });
  }, timeout);
}
