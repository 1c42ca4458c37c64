/**
 * Group `lease`: zero-copy reads (`leaseRead`) and adopted writes (`immutable`). Lending is
 * optional, so every rule is conditional on the driver lending: a lease's bytes are those a copy
 * of the same range would read; its views never change while it is held, whatever overlapping
 * writes, zeroes and discards happen meanwhile, nor when it is released; release is idempotent;
 * a closed driver refuses with ESHUTDOWN. A model run checks that a driver adopting immutable
 * writes never lets a later change reach memory it lent or adopted earlier, and that it holds
 * pooled buffers (trackBuffer) while it keeps them: the model's pool scribbles over a buffer the
 * moment its last hold ends, so a driver that let go too early reads back garbage — and once the
 * whole device is zeroed (leases released), and again after close, no hold may remain.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { BlockDriver } from '../../src/driver.js';
import { bufferHolds, releaseBuffer, trackBuffer } from '../../src/buffers/ownership.js';
import type { ReadLease } from '../../src/types.js';
import { alignedIoRangeArb, anyRangeArb, ioRangeArb, type Range } from './arbitraries.js';
import { expectBytes, expectCode, pattern, readAll, writeAll } from './checks.js';
import type { SuiteContext } from './context.js';

/** The bytes of a lease's views, copied into one array. */
function joined(lease: ReadLease): Uint8Array {
  const total = lease.views.reduce((n, v) => n + v.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const v of lease.views) {
    out.set(v, at);
    at += v.length;
  }
  return out;
}

/** A change overlapping lent memory: a write of fresh bytes, a writeZeroes or a discard. */
type Change = { readonly kind: 'write' | 'zero' | 'unmap' | 'discard'; readonly r: Range; readonly seed: number };

function changeArb(ctx: SuiteContext): fc.Arbitrary<Change> {
  return fc.record({
    kind: fc.constantFrom('write' as const, 'zero' as const, 'unmap' as const, 'discard' as const),
    r: fc.oneof(ioRangeArb(ctx), alignedIoRangeArb(ctx), anyRangeArb(ctx)),
    seed: fc.nat(),
  });
}

async function apply(d: BlockDriver, c: Change, maxIo: number, mode: WriteMode): Promise<void> {
  if (c.kind === 'write') {
    const data = pattern(c.r.length, c.seed);
    if (c.r.length <= maxIo) await writeAs(d, c.r.offset, data, mode);
    else await writeAll(d, c.r.offset, data, maxIo);
  } else if (c.kind === 'discard') await d.discard(c.r.offset, c.r.length);
  else await d.writeZeroes(c.r.offset, c.r.length, { mayUnmap: c.kind === 'unmap' });
}

/** How a write hands over its data: a buffer the caller reuses, one it never changes, or a pooled one. */
type WriteMode = 'copy' | 'immutable' | 'pooled';
const writeModeArb = fc.constantFrom<WriteMode>('copy', 'immutable', 'pooled');

/**
 * Writes `data` as `mode` says. A pooled write goes from memory of its own (holds are counted per
 * ArrayBuffer), tracked so that it is spoiled (0xee) the moment its last hold ends — as a pool
 * would reuse it — and the writer's own hold ends as soon as the write settles. Returns that
 * memory for pooled writes. A copied write's buffer is spoiled at once, as a caller may reuse it.
 */
async function writeAs(d: BlockDriver, offset: number, data: Uint8Array, mode: WriteMode): Promise<Uint8Array | undefined> {
  if (mode !== 'pooled') {
    const own = mode === 'copy' ? data.slice() : data;
    await d.write(offset, own, { immutable: mode === 'immutable' });
    if (mode === 'copy') own.fill(0xee);
    return undefined;
  }
  const buf = new Uint8Array(new ArrayBuffer(data.length));
  buf.set(data);
  trackBuffer(buf, () => buf.fill(0xee));
  try {
    await d.write(offset, buf, { immutable: true });
  } finally {
    releaseBuffer(buf);
  }
  return buf;
}

/** Registers the `lease` tests. */
export function leaseTests(ctx: SuiteContext): void {
  const { unit, size, maxIo, timeout, numRuns } = ctx;
  const rw = ctx.caps.canWrite;

  it('a lease, when lent, holds exactly the bytes readInto reads for the same range', async () => {
    await fc.assert(
      fc.asyncProperty(ioRangeArb(ctx), ioRangeArb(ctx), fc.nat(), fc.boolean(), async (written, r, seed, immutable) => {
        await ctx.withDriver(async (d) => {
          if (rw) await d.write(written.offset, pattern(written.length, seed), { immutable });
          const lease = await d.leaseRead(r.offset, r.length);
          if (lease === undefined) return;
          try {
            for (const v of lease.views) expect(v.length, 'no empty views').toBeGreaterThan(0);
            const copy = new Uint8Array(r.length);
            await d.readInto(r.offset, copy);
            expectBytes(joined(lease), copy, `lease of ${r.offset}+${r.length}`, r.offset);
          } finally {
            lease.release();
          }
        });
      }),
      { numRuns },
    );
  }, timeout);

  it('lent views stay unchanged through overlapping writes, zeroes and discards, and after release', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(ioRangeArb(ctx), alignedIoRangeArb(ctx)),
        fc.nat(),
        fc.array(changeArb(ctx), { minLength: 1, maxLength: 6 }),
        writeModeArb,
        async (r, seed, changes, mode) => {
          await ctx.withDriver(async (d) => {
            if (rw) await writeAs(d, r.offset, pattern(r.length, seed), mode);
            const lease = await d.leaseRead(r.offset, r.length);
            if (lease === undefined) return;
            const before = joined(lease);
            // A second lease of the same bytes, released early, must not unpin the first.
            const other = await d.leaseRead(r.offset, r.length);
            other?.release();
            if (rw) for (const c of changes) await apply(d, c, maxIo, mode);
            expectBytes(joined(lease), before, 'lent views after changes', r.offset);
            lease.release();
            // Pooled memory may be reused once the last hold (this lease's) ends; other memory stays.
            if (mode !== 'pooled') expectBytes(joined(lease), before, 'lent views after release', r.offset);
          });
        },
      ),
      { numRuns },
    );
  }, timeout);

  it('release is idempotent and the driver works normally afterwards', async () => {
    await ctx.withDriver(async (d) => {
      const data = pattern(8 * unit, 71);
      if (rw) await d.write(0, data);
      const lease = await d.leaseRead(0, 8 * unit);
      lease?.release();
      lease?.release();
      const empty = await d.leaseRead(unit, 0);
      expect(empty?.views.length ?? 0, 'a zero-length lease has no views').toBe(0);
      empty?.release();
      empty?.release();
      if (!rw) return;
      const next = pattern(4 * unit, 72);
      await d.write(2 * unit, next);
      const expected = data.slice();
      expected.set(next, 2 * unit);
      expectBytes(await readAll(d, 0, 8 * unit, maxIo), expected, 'after repeated releases');
    });
  }, timeout);

  it('leaseRead is validated like read: ESHUTDOWN when closed, EINVAL past the end', async () => {
    await ctx.withDriver(async (d) => {
      await expectCode(() => d.leaseRead(size - unit, 2 * unit), 'EINVAL', 'leaseRead past the end');
      await expectCode(() => d.leaseRead(-unit, unit), 'EINVAL', 'leaseRead at a negative offset');
      await d.close();
      await expectCode(() => d.leaseRead(0, unit), 'ESHUTDOWN', 'leaseRead after close');
      await expectCode(() => d.leaseRead(0, 0), 'ESHUTDOWN', 'empty leaseRead after close');
    });
  }, timeout);

  if (rw) immutableModelTest(ctx);
}

/** The model: the expected disk, the immutable data given to the driver, and held leases. */
interface LeaseModel {
  readonly disk: Uint8Array;
  /** Arrays written with `immutable`, with a copy of what they held: neither side may change. */
  readonly adopted: { readonly data: Uint8Array; readonly copy: Uint8Array }[];
  /** Buffers written from the model's pool: overwritten with 0xee once their last hold ends. */
  readonly pooled: Uint8Array[];
  /** Leases held, with the bytes they showed when taken. */
  readonly held: { readonly lease: ReadLease; readonly bytes: Uint8Array; readonly offset: number }[];
}

type Command = fc.AsyncCommand<LeaseModel, BlockDriver>;

/** After every command: adopted arrays and held leases are exactly as they were. */
function expectIntact(m: LeaseModel): void {
  for (const a of m.adopted) expectBytes(a.data, a.copy, 'data of an earlier immutable write');
  for (const h of m.held) expectBytes(joined(h.lease), h.bytes, 'a held lease', h.offset);
}

class WriteCommand implements Command {
  constructor(readonly r: Range, readonly seed: number, readonly mode: WriteMode) {}
  check = (): boolean => true;
  async run(m: LeaseModel, d: BlockDriver): Promise<void> {
    const data = pattern(this.r.length, this.seed);
    m.disk.set(data, this.r.offset);
    const pooled = await writeAs(d, this.r.offset, data, this.mode);
    if (pooled !== undefined) m.pooled.push(pooled);
    // The caller keeps its promise for immutable data.
    if (this.mode === 'immutable') m.adopted.push({ data, copy: data.slice() });
    expectIntact(m);
  }
  toString = (): string => `write(${this.r.offset}, ${this.r.length}, ${this.mode})`;
}

class ZeroCommand implements Command {
  constructor(readonly r: Range, readonly mayUnmap: boolean) {}
  check = (): boolean => true;
  async run(m: LeaseModel, d: BlockDriver): Promise<void> {
    await d.writeZeroes(this.r.offset, this.r.length, { mayUnmap: this.mayUnmap });
    m.disk.fill(0, this.r.offset, this.r.offset + this.r.length);
    expectIntact(m);
  }
  toString = (): string => `writeZeroes(${this.r.offset}, ${this.r.length}, mayUnmap: ${this.mayUnmap})`;
}

class LeaseCommand implements Command {
  constructor(readonly r: Range) {}
  check = (m: Readonly<LeaseModel>): boolean => m.held.length < 8;
  async run(m: LeaseModel, d: BlockDriver): Promise<void> {
    const lease = await d.leaseRead(this.r.offset, this.r.length);
    if (lease === undefined) return;
    const bytes = joined(lease);
    expectBytes(bytes, m.disk.subarray(this.r.offset, this.r.offset + this.r.length), 'a new lease', this.r.offset);
    m.held.push({ lease, bytes, offset: this.r.offset });
  }
  toString = (): string => `leaseRead(${this.r.offset}, ${this.r.length})`;
}

class ReleaseCommand implements Command {
  constructor(readonly pick: number) {}
  check = (m: Readonly<LeaseModel>): boolean => m.held.length > 0;
  async run(m: LeaseModel, d: BlockDriver): Promise<void> {
    const [h] = m.held.splice(this.pick % m.held.length, 1);
    h?.lease.release();
    expectIntact(m);
    // Released memory may be reused again: the disk must still read as the model says.
    const r = { offset: h?.offset ?? 0, length: h?.bytes.length ?? 0 };
    if (r.length > 0) expectBytes(await d.read(r.offset, r.length), m.disk.subarray(r.offset, r.offset + r.length), 'read after release', r.offset);
  }
  toString = (): string => `release(#${this.pick})`;
}

class ReadCommand implements Command {
  constructor(readonly r: Range) {}
  check = (): boolean => true;
  async run(m: LeaseModel, d: BlockDriver): Promise<void> {
    const got = await d.read(this.r.offset, this.r.length);
    expectBytes(got, m.disk.subarray(this.r.offset, this.r.offset + this.r.length), 'read', this.r.offset);
    expectIntact(m);
  }
  toString = (): string => `read(${this.r.offset}, ${this.r.length})`;
}

function immutableModelTest(ctx: SuiteContext): void {
  const { size, timeout, numRuns } = ctx;
  const io = fc.oneof(ioRangeArb(ctx), alignedIoRangeArb(ctx));
  const commands = [
    fc
      .tuple(io, fc.nat(), writeModeArb)
      .map(([r, s, mode]) => new WriteCommand(r, s, mode)),
    fc.tuple(anyRangeArb(ctx), fc.boolean()).map(([r, unmap]) => new ZeroCommand(r, unmap)),
    io.map((r) => new LeaseCommand(r)),
    fc.nat().map((n) => new ReleaseCommand(n)),
    io.map((r) => new ReadCommand(r)),
  ];
  it('model: immutable writes and leases never let a later change alias earlier data; pooled memory is held while kept', async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 30 }), async (cmds) => {
        const pooled: Uint8Array[] = [];
        await ctx.withDriver(async (d) => {
          const model: LeaseModel = { disk: new Uint8Array(size), adopted: [], pooled, held: [] };
          try {
            await fc.asyncModelRun(() => ({ model, real: d }), cmds);
          } finally {
            for (const h of model.held) h.lease.release();
          }
          // Once every byte has been overwritten and no lease is held, nothing of those writes
          // may still be kept: a driver must let adopted memory go when it is overwritten.
          await d.writeZeroes(0, size, { mayUnmap: true });
          for (const buf of pooled) expect(bufferHolds(buf), 'holds on a pooled buffer after the whole device was zeroed').toBe(0);
        });
        // Closed, leases released: the driver keeps nothing, so it holds nothing.
        for (const buf of pooled) expect(bufferHolds(buf), 'holds on a pooled buffer after close').toBe(0);
      }),
      { numRuns },
    );
  }, timeout);
}
