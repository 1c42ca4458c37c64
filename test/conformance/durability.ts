/**
 * Group `durability`: what a driver acknowledged is still there when the same storage is opened
 * again. Needs the embedder's `reopen` (a new driver over the storage of a closed one: the same
 * file, the same export of a server that kept running). A process that stays alive cannot prove
 * what survives a power cut; this proves that close() and reopening lose nothing acknowledged —
 * flushed or not, FUA or not, still in flight when close() was called — and that the reopened
 * driver has the same manifest.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { BlockDriver } from '../../src/driver.js';
import { ioRangeArb, type Range } from './arbitraries.js';
import { expectBytes, pattern, readAll, writeChecked } from './checks.js';
import { alignDown, type SuiteContext } from './context.js';

/** A change to the device, applied to the driver and to the expected bytes. */
type Change =
  | { readonly kind: 'write'; readonly r: Range; readonly seed: number; readonly fua: boolean }
  | { readonly kind: 'zero'; readonly r: Range; readonly mayUnmap: boolean; readonly fua: boolean }
  | { readonly kind: 'discard'; readonly r: Range };

/** The expected device: its bytes, and per byte whether a discard left it "old or zero". */
interface Expected {
  readonly data: Uint8Array;
  readonly unknown: Uint8Array;
}

/** Registers the `durability` tests. */
export function durabilityTests(ctx: SuiteContext): void {
  const { timeout, numRuns } = ctx;
  const reopen = ctx.reopen;
  if (reopen === undefined) {
    it.skip('[needs reopen] acknowledged data survives close() and reopening', () => {});
    return;
  }
  if (!ctx.caps.canWrite) {
    it('[read-only] a reopened driver has the same size and manifest', async () => {
      await lineage(ctx, reopen, async (first, again) => {
        const before = await readAll(first, 0, ctx.size, ctx.maxIo);
        const second = await again(first);
        expectBytes(await readAll(second, 0, ctx.size, ctx.maxIo), before, 'the reopened read-only device');
      });
    }, timeout);
    return;
  }

  const changeArb: fc.Arbitrary<Change> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), r: ioRangeArb(ctx), seed: fc.nat(1000), fua: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('zero' as const), r: ioRangeArb(ctx), mayUnmap: fc.boolean(), fua: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('discard' as const), r: ioRangeArb(ctx) }) },
  );

  it('writes, zeroes and discards survive flush, close() and reopening; the manifest is unchanged (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(changeArb, { minLength: 1, maxLength: 8 }), fc.boolean(), async (changes, flush) => {
        await lineage(ctx, reopen, async (first, again) => {
          const want = blank(ctx.size);
          for (const change of changes) await apply(first, change, want, ctx.discardReadsZeroes);
          // Without the flush, close() itself must keep what was acknowledged.
          if (flush && first.capabilities.canFlush) await first.flush();
          const second = await again(first);
          expectExpected(await readAll(second, 0, ctx.size, ctx.maxIo), want, `after ${changes.map(show).join(', ')}${flush ? ', flush' : ''}, close and reopen`);
        });
      }),
      { numRuns },
    );
  }, timeout);

  it('writes still in flight when close() is called are kept', async () => {
    await lineage(ctx, reopen, async (first, again) => {
      const unit = ctx.unit;
      const slots = Math.min(8, Math.floor(ctx.size / (2 * unit)));
      const want = blank(ctx.size);
      const writes: Promise<void>[] = [];
      for (let i = 0; i < slots; i++) {
        const data = pattern(2 * unit, 700 + i);
        want.data.set(data, i * 2 * unit);
        writes.push(first.write(i * 2 * unit, data));
      }
      const second = await again(first);
      await Promise.all(writes);
      expectExpected(await readAll(second, 0, ctx.size, ctx.maxIo), want, 'writes issued just before close()');
    });
  }, timeout);

  it('a reopened driver takes writes that survive a second reopening', async () => {
    await lineage(ctx, reopen, async (first, again) => {
      // Disjoint from b, which takes the last unit.
      const a = pattern(alignDown(Math.min(ctx.maxIo, ctx.size - ctx.unit), ctx.unit), 801);
      const b = pattern(ctx.unit, 802);
      await writeChecked(first, 0, a);
      const second = await again(first);
      await writeChecked(second, ctx.size - ctx.unit, b);
      const third = await again(second);
      expectBytes(await readAll(third, 0, a.length, ctx.maxIo), a, 'written before the first reopening');
      expectBytes(await readAll(third, ctx.size - ctx.unit, ctx.unit, ctx.maxIo), b, 'written before the second reopening', ctx.size - ctx.unit);
    });
  }, timeout);
}

/**
 * Runs `fn` with a first driver and `again(d)`, which closes `d` and reopens its storage. Every
 * driver is released at the end, newest first: the embedder's cleanup of the first one may remove
 * the storage they all share.
 */
async function lineage(
  ctx: SuiteContext,
  reopen: NonNullable<SuiteContext['reopen']>,
  fn: (first: BlockDriver, again: (d: BlockDriver) => Promise<BlockDriver>) => Promise<void>,
): Promise<void> {
  const drivers = [await ctx.open()];
  const again = async (d: BlockDriver): Promise<BlockDriver> => {
    await d.close();
    const next = await reopen(d);
    drivers.push(next);
    expect(next, 'reopen returns a new driver').not.toBe(d);
    expect(next.state, 'the reopened driver is open').toBe('open');
    expect(next.size, 'the reopened driver has the same size').toBe(ctx.size);
    expect({ ...next.capabilities }, 'the reopened driver has the same capabilities').toEqual(ctx.caps);
    expect({ ...next.limits }, 'the reopened driver has the same limits').toEqual(ctx.limits);
    return next;
  };
  try {
    await fn(drivers[0]!, again);
  } finally {
    for (const d of drivers.reverse()) await ctx.release(d);
  }
}

function blank(size: number): Expected {
  return { data: new Uint8Array(size), unknown: new Uint8Array(size) };
}

async function apply(d: BlockDriver, change: Change, want: Expected, discardReadsZeroes: boolean): Promise<void> {
  const { offset, length } = change.r;
  const end = offset + length;
  switch (change.kind) {
    case 'write':
      want.data.set(await writeChecked(d, offset, pattern(length, change.seed), { fua: change.fua }), offset);
      want.unknown.fill(0, offset, end);
      return;
    case 'zero':
      await d.writeZeroes(offset, length, { mayUnmap: change.mayUnmap, fua: change.fua });
      want.data.fill(0, offset, end);
      want.unknown.fill(0, offset, end);
      return;
    case 'discard':
      await d.discard(offset, length);
      if (discardReadsZeroes) want.data.fill(0, offset, end);
      else want.unknown.fill(1, offset, end);
  }
}

/** Fails at the first byte that is neither the expected value nor, where a discard made it uncertain, zero. */
function expectExpected(got: Uint8Array, want: Expected, what: string): void {
  for (let i = 0; i < got.length; i++) {
    if (got[i] === want.data[i] || (want.unknown[i] === 1 && got[i] === 0)) continue;
    const allowed = want.unknown[i] === 1 ? `${want.data[i]} or 0 (discarded)` : `${want.data[i]}`;
    expect.fail(`${what}: byte at ${i} is ${got[i]}, expected ${allowed}`);
  }
}

function show(c: Change): string {
  const at = `${c.r.offset}, ${c.r.length}`;
  if (c.kind === 'write') return `write(${at}, seed ${c.seed}${c.fua ? ', fua' : ''})`;
  if (c.kind === 'zero') return `writeZeroes(${at}${c.mayUnmap ? ', mayUnmap' : ''}${c.fua ? ', fua' : ''})`;
  return `discard(${at})`;
}
