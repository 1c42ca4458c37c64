/**
 * Group `model`: random sequences of write, writeZeroes, discard, read, flush and blockStatus run
 * against the driver and against a plain byte-array model of the disk, and must agree. The model
 * is deliberately naive: a Uint8Array of the whole device plus, per byte, whether a discard left
 * it "old value or zero" (unknown) — unless the embedder says discards read back as zeros.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { BlockDriver } from '../../src/driver.js';
import { anyRangeArb, ioRangeArb, type Range } from './arbitraries.js';
import { checkExtents, expectCode, expectZeros, pattern, readAll, unlike, writeChecked } from './checks.js';
import type { SuiteContext } from './context.js';

/** The model disk: expected bytes, and which of them a discard made uncertain. */
interface DiskModel {
  readonly data: Uint8Array;
  /** 1 where the byte may read as `data` or as 0. */
  readonly unknown: Uint8Array;
}

type Command = fc.AsyncCommand<DiskModel, BlockDriver>;

/** Fails unless `bytes` read at `offset` are what the model allows. */
function expectModel(m: DiskModel, bytes: Uint8Array, offset: number, what: string): void {
  for (let i = 0; i < bytes.length; i++) {
    const want = m.data[offset + i];
    const got = bytes[i];
    if (got === want || (m.unknown[offset + i] === 1 && got === 0)) continue;
    const allowed = m.unknown[offset + i] === 1 ? `${want} or 0 (discarded)` : `${want}`;
    expect.fail(`${what}: byte at ${offset + i} is ${got}, the model allows ${allowed}`);
  }
}

const show = (r: Range): string => `${r.offset}, ${r.length}`;

class WriteCommand implements Command {
  constructor(readonly r: Range, readonly seed: number, readonly fua: boolean) {}
  check = (): boolean => true;
  async run(m: DiskModel, d: BlockDriver): Promise<void> {
    const data = await writeChecked(d, this.r.offset, pattern(this.r.length, this.seed), { fua: this.fua });
    m.data.set(data, this.r.offset);
    m.unknown.fill(0, this.r.offset, this.r.offset + this.r.length);
  }
  toString = (): string => `write(${show(this.r)}, seed ${this.seed}${this.fua ? ', fua' : ''})`;
}

class ZeroCommand implements Command {
  constructor(readonly r: Range, readonly mayUnmap: boolean, readonly fua: boolean, readonly fastZero: boolean, readonly fastOk: boolean) {}
  check = (): boolean => true;
  async run(m: DiskModel, d: BlockDriver): Promise<void> {
    const { offset, length } = this.r;
    const options = { mayUnmap: this.mayUnmap, fua: this.fua, fastZero: this.fastZero };
    if (this.fastZero && !this.fastOk) {
      await expectCode(() => d.writeZeroes(offset, length, options), 'ENOTSUP', this.toString());
      return;
    }
    try {
      await d.writeZeroes(offset, length, options);
    } catch (err) {
      // Even a driver that can fast-zero may refuse a range it cannot zero quickly; the model
      // stays as it was, and later reads check that the driver's data did too.
      if (this.fastZero && (err as { code?: unknown }).code === 'ENOTSUP') return;
      throw err;
    }
    m.data.fill(0, offset, offset + length);
    m.unknown.fill(0, offset, offset + length);
  }
  toString = (): string =>
    `writeZeroes(${show(this.r)}${this.mayUnmap ? ', mayUnmap' : ''}${this.fua ? ', fua' : ''}${this.fastZero ? ', fastZero' : ''})`;
}

class DiscardCommand implements Command {
  constructor(readonly r: Range, readonly fua: boolean, readonly readsZeroes: boolean) {}
  check = (): boolean => true;
  async run(m: DiskModel, d: BlockDriver): Promise<void> {
    const { offset, length } = this.r;
    await d.discard(offset, length, { fua: this.fua });
    if (this.readsZeroes) {
      m.data.fill(0, offset, offset + length);
      m.unknown.fill(0, offset, offset + length);
    } else {
      m.unknown.fill(1, offset, offset + length);
    }
  }
  toString = (): string => `discard(${show(this.r)}${this.fua ? ', fua' : ''})`;
}

class ReadCommand implements Command {
  constructor(readonly r: Range, readonly into: boolean) {}
  check = (): boolean => true;
  async run(m: DiskModel, d: BlockDriver): Promise<void> {
    const { offset, length } = this.r;
    let bytes: Uint8Array;
    if (this.into) {
      // Pre-filled with bytes that are neither the expected value nor zero, so a byte the driver
      // leaves unfilled always fails, even where a discard made zero acceptable.
      bytes = unlike(length, m.data.subarray(offset, offset + length));
      await d.readInto(offset, bytes);
    } else {
      bytes = await d.read(offset, length);
    }
    expectModel(m, bytes, offset, this.toString());
  }
  toString = (): string => `${this.into ? 'readInto' : 'read'}(${show(this.r)})`;
}

class FlushCommand implements Command {
  check = (): boolean => true;
  async run(_m: DiskModel, d: BlockDriver): Promise<void> {
    await d.flush();
  }
  toString = (): string => 'flush()';
}

class BlockStatusCommand implements Command {
  constructor(readonly r: Range, readonly unit: number, readonly maxIo: number) {}
  check = (): boolean => true;
  async run(m: DiskModel, d: BlockDriver): Promise<void> {
    const extents = await d.blockStatus(this.r.offset, this.r.length);
    checkExtents(extents, this.r.offset, this.r.length, this.unit);
    for (const e of extents) {
      if (!e.zero) continue;
      // Honest zero flag: the model must allow zeros there, and the driver must read zeros.
      expectModel(m, new Uint8Array(e.length), e.offset, `${this.toString()}: extent ${e.offset}+${e.length} flagged zero`);
      expectZeros(await readAll(d, e.offset, e.length, this.maxIo), `${this.toString()}: extent flagged zero`, e.offset);
    }
  }
  toString = (): string => `blockStatus(${show(this.r)})`;
}

/** The command generators allowed by the driver's manifest. */
function commandArbs(ctx: SuiteContext): Array<fc.Arbitrary<Command>> {
  const io = ioRangeArb(ctx);
  const any = anyRangeArb(ctx);
  const reads: Array<fc.Arbitrary<Command>> = [
    fc.tuple(io, fc.boolean()).map(([r, into]) => new ReadCommand(r, into)),
    fc.constant(new FlushCommand()),
    any.map((r) => new BlockStatusCommand(r, ctx.unit, ctx.maxIo)),
  ];
  if (!ctx.caps.canWrite) return reads;
  const fastOk = ctx.caps.canZero && ctx.caps.canFastZero;
  return [
    ...reads,
    // Listed twice to weight it: writes give every other command something to act on.
    fc.tuple(io, fc.nat(), fc.boolean()).map(([r, seed, fua]) => new WriteCommand(r, seed, fua)),
    fc.tuple(io, fc.nat(), fc.boolean()).map(([r, seed, fua]) => new WriteCommand(r, seed, fua)),
    fc
      .tuple(any, fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 4 }))
      .map(([r, mayUnmap, fua, f]) => new ZeroCommand(r, mayUnmap, fua, f === 0, fastOk)),
    fc.tuple(any, fc.boolean()).map(([r, fua]) => new DiscardCommand(r, fua, ctx.discardReadsZeroes)),
  ];
}

/** Registers the `model` tests. */
export function modelTests(ctx: SuiteContext): void {
  const { size, maxIo, timeout, numRuns } = ctx;
  const flavour = ctx.caps.canWrite ? 'write/writeZeroes/discard/read/flush/blockStatus' : 'read/flush/blockStatus';

  it(`random ${flavour} sequences agree with a byte-array model`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(commandArbs(ctx), { maxCommands: 40 }), async (commands) => {
        await ctx.withDriver(async (d) => {
          const model: DiskModel = { data: new Uint8Array(size), unknown: new Uint8Array(size) };
          await fc.asyncModelRun(() => ({ model, real: d }), commands);
          expectModel(model, await readAll(d, 0, size, maxIo), 0, 'whole device at the end');
        });
      }),
      { numRuns },
    );
  }, timeout);
}
