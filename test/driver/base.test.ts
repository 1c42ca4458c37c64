/**
 * The base class's own promises, seen from the implementation's side: how requests are split,
 * aligned, emulated and cancelled before they reach `_op` methods.
 */
import fc from 'fast-check';
import { constants as bufferConstants } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { BlockDriver } from '../../src/driver.js';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { isBlockError } from '../../src/errors.js';
import { NO_CAPABILITIES, type BlockCapabilities, type BlockLimits, type IoOptions, type WriteOptions } from '../../src/types.js';
import { SECTOR, TOY_MAX_BLOCK, TOY_MAX_TRANSFER, ToyDriver, type ToyCall } from './toy-driver.js';

const SIZE = 1024 * 1024;

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    expect(isBlockError(err), String(err)).toBe(true);
    return (err as { code: string }).code;
  }
}

/** The calls of `op`, checked to be aligned, within maxTransfer, and to tile [offset, offset+length). */
function expectTiled(calls: readonly ToyCall[], op: string, offset: number, length: number): void {
  const pieces = calls.filter((c) => c.op === op);
  let pos = offset;
  for (const c of pieces) {
    expect(c.offset).toBe(pos);
    expect(c.length % SECTOR).toBe(0);
    expect(c.length).toBeLessThanOrEqual(TOY_MAX_TRANSFER);
    pos += c.length;
  }
  expect(pos).toBe(offset + length);
}

describe('BlockDriver splitting and alignment', () => {
  it('splits reads and writes longer than maxTransfer into aligned pieces that tile the request', async () => {
    const d = new ToyDriver({ size: SIZE });
    const data = new Uint8Array(TOY_MAX_BLOCK).map((_, i) => (i % 251) + 1);
    await d.write(SECTOR, data);
    expectTiled(d.calls, 'write', SECTOR, TOY_MAX_BLOCK);
    d.calls.length = 0;
    expect(await d.read(SECTOR, TOY_MAX_BLOCK)).toEqual(data);
    expectTiled(d.calls, 'read', SECTOR, TOY_MAX_BLOCK);
    await d.close();
  });

  it('keeps pieces aligned when maxTransfer is not a multiple of minBlockSize', async () => {
    class Odd extends ToyDriver {
      override get limits(): BlockLimits {
        return { ...super.limits, maxTransfer: 1000 };
      }
    }
    const d = new Odd({ size: SIZE });
    await d.write(0, new Uint8Array(8 * SECTOR).fill(7));
    for (const c of d.calls) expect(c.length).toBe(SECTOR);
    await d.close();
  });

  it('refuses reads and writes over maxBlockSize with EOVERFLOW, but not discard, writeZeroes or blockStatus', async () => {
    const d = new ToyDriver({ size: SIZE });
    const over = TOY_MAX_BLOCK + SECTOR;
    expect(await codeOf(d.read(0, over))).toBe('EOVERFLOW');
    expect(await codeOf(d.write(0, new Uint8Array(over)))).toBe('EOVERFLOW');
    expect(d.calls).toEqual([]);
    await d.writeZeroes(0, over);
    await d.discard(0, over);
    await d.blockStatus(0, over);
    await d.close();
  });

  it('merges the per-sector extents of an implementation into runs', async () => {
    const d = new ToyDriver({ size: SIZE });
    await d.write(4 * SECTOR, new Uint8Array(2 * SECTOR).fill(1));
    expect(await d.blockStatus(0, 16 * SECTOR)).toEqual([
      { offset: 0, length: 4 * SECTOR, zero: true, allocated: false },
      { offset: 4 * SECTOR, length: 2 * SECTOR, zero: false, allocated: true },
      { offset: 6 * SECTOR, length: 10 * SECTOR, zero: true, allocated: false },
    ]);
    await d.close();
  });
});

describe('BlockDriver emulation', () => {
  it('emulates FUA with one flush after the whole write, never per piece', async () => {
    const d = new ToyDriver({ size: SIZE });
    await d.write(0, new Uint8Array(4 * TOY_MAX_TRANSFER).fill(1), { fua: true });
    expect(d.calls.map((c) => c.op)).toEqual(['write', 'write', 'write', 'write', 'flush']);
    expect(d.calls.filter((c) => c.op === 'write').every((c) => c.fua === false)).toBe(true);
    d.calls.length = 0;
    await d.discard(0, SECTOR, { fua: true });
    expect(d.calls).toEqual([{ op: 'discard', offset: 0, length: SECTOR, fua: false }, { op: 'flush', offset: 0, length: 0 }]);
    await d.close();
  });

  it('passes native FUA to every piece and does not flush', async () => {
    const seen: Array<boolean | undefined> = [];
    let flushes = 0;
    class NativeFua extends MemoryDriver {
      override get limits(): BlockLimits {
        return { ...super.limits, maxTransfer: 4096 };
      }
      protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
        seen.push(options.fua);
        return super._write(offset, data, options);
      }
      protected override _flush(options: IoOptions): Promise<void> {
        flushes++;
        return super._flush(options);
      }
    }
    const d = new NativeFua({ size: SIZE });
    await d.write(0, new Uint8Array(3 * 4096), { fua: true });
    expect(seen).toEqual([true, true, true]);
    expect(flushes).toBe(0);
    await d.close();
  });

  it('emulates writeZeroes with aligned writes of at most maxTransfer, then one flush for FUA', async () => {
    const d = new ToyDriver({ size: SIZE });
    await d.write(0, new Uint8Array(TOY_MAX_BLOCK).fill(9));
    d.calls.length = 0;
    await d.writeZeroes(SECTOR, 40 * SECTOR, { fua: true });
    expectTiled(d.calls, 'write', SECTOR, 40 * SECTOR);
    expect(d.calls[d.calls.length - 1].op).toBe('flush');
    expect(d.calls.filter((c) => c.op === 'flush')).toHaveLength(1);
    expect((await d.read(SECTOR, 40 * SECTOR)).every((b) => b === 0)).toBe(true);
    expect((await d.read(41 * SECTOR, SECTOR)).every((b) => b === 9)).toBe(true);
    await d.close();
  });

  it('falls back to writing zeros when native zeroing says ENOTSUP, but never for fastZero', async () => {
    const d = new ToyDriver({ size: SIZE, zeroFailsNotSup: true });
    await d.write(0, new Uint8Array(2 * SECTOR).fill(3));
    d.calls.length = 0;
    await d.writeZeroes(0, 2 * SECTOR);
    expect(d.calls.map((c) => c.op)).toEqual(['writeZeroes', 'write']);
    expect((await d.read(0, 2 * SECTOR)).every((b) => b === 0)).toBe(true);
    d.calls.length = 0;
    expect(await codeOf(d.writeZeroes(0, SECTOR, { fastZero: true }))).toBe('ENOTSUP');
    expect(d.calls).toEqual([]);
    await d.close();
  });

  it('answers blockStatus for a driver without canBlockStatus with one data extent, without asking it', async () => {
    const d = new ToyDriver({ size: SIZE, blockStatus: false });
    expect(await d.blockStatus(SECTOR, 8 * SECTOR)).toEqual([{ offset: SECTOR, length: 8 * SECTOR, zero: false, allocated: true }]);
    expect(d.calls).toEqual([]);
    await d.close();
  });
});

describe('BlockDriver cancellation and limits of memory', () => {
  it('stops a split request between pieces once its signal aborts, with the reason as cause', async () => {
    const controller = new AbortController();
    const reason = new Error('user pressed stop');
    class AbortsAfterOne extends ToyDriver {
      protected override _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
        controller.abort(reason);
        return super._read(offset, target, options);
      }
    }
    const d = new AbortsAfterOne({ size: SIZE });
    const err = await d.read(0, TOY_MAX_BLOCK, { signal: controller.signal }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ECANCELED', cause: reason });
    expect(d.calls.filter((c) => c.op === 'read')).toHaveLength(1);
    expect(d.inFlight).toBe(0);
    await d.close();
  });

  it('a timeout signal (AbortSignal.timeout) is ETIMEDOUT whether it fired before the request or between pieces', async () => {
    const fired = AbortSignal.timeout(1);
    await new Promise((r) => setTimeout(r, 20));
    const d = new ToyDriver({ size: SIZE });
    expect(await d.read(0, 16, { signal: fired }).catch((e: unknown) => e)).toMatchObject({ code: 'ETIMEDOUT', cause: fired.reason });
    const controller = new AbortController();
    class TimesOutAfterOne extends ToyDriver {
      protected override _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
        controller.abort(new DOMException('deadline passed', 'TimeoutError'));
        return super._read(offset, target, options);
      }
    }
    const split = new TimesOutAfterOne({ size: SIZE });
    expect(await codeOf(split.read(0, TOY_MAX_BLOCK, { signal: controller.signal }))).toBe('ETIMEDOUT');
    await d.close();
    await split.close();
  });

  it('stops an emulated writeZeroes between pieces once its signal aborts', async () => {
    const controller = new AbortController();
    class AbortsOnWrite extends ToyDriver {
      protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
        controller.abort();
        return super._write(offset, data, options);
      }
    }
    const d = new AbortsOnWrite({ size: SIZE });
    expect(await codeOf(d.writeZeroes(0, SIZE, { signal: controller.signal }))).toBe('ECANCELED');
    expect(d.calls.filter((c) => c.op === 'write')).toHaveLength(1);
    await d.close();
  });

  it.skipIf(bufferConstants.MAX_LENGTH >= 2 ** 52)('fails a read the process cannot allocate with ENOMEM, not a RangeError', async () => {
    class Huge extends BlockDriver {
      get size(): number {
        return 2 ** 52;
      }
      get capabilities(): BlockCapabilities {
        return NO_CAPABILITIES;
      }
      override get limits(): BlockLimits {
        return { minBlockSize: 1, preferredBlockSize: 4096, maxBlockSize: 2 ** 52, maxTransfer: 2 ** 20 };
      }
      protected _read(): Promise<void> {
        return Promise.reject(new Error('never reached'));
      }
    }
    const d = new Huge();
    expect(await codeOf(d.read(0, bufferConstants.MAX_LENGTH + 1))).toBe('ENOMEM');
    expect(d.inFlight).toBe(0);
    await d.close();
  });
});

describe('BlockDriver read buffers', () => {
  it('a read returns a plain Uint8Array that owns exactly its memory, so it can be transferred', async () => {
    const d = new MemoryDriver({ size: 1 << 17 });
    await d.write(0, new Uint8Array(1 << 17).map((_, i) => (i % 253) + 1));
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 1, max: 1 << 17 })), async (length) => {
        const a = await d.read(0, length);
        const b = await d.read(0, length);
        // Small reads used to be slices of Node's shared 8 KiB pool, exposing other data.
        expect(Buffer.isBuffer(a)).toBe(false);
        expect(a.byteOffset).toBe(0);
        expect(a.buffer.byteLength).toBe(length);
        expect(a.buffer).not.toBe(b.buffer);
        // slice() copies, as for any Uint8Array (Buffer's slice would be a view).
        const copy = a.slice();
        copy[0] ^= 0xff;
        expect(a[0]).toBe(1);
        const owned = a.buffer as ArrayBuffer;
        const moved = structuredClone(owned, { transfer: [owned] });
        expect(a.buffer.byteLength).toBe(0);
        expect(new Uint8Array(moved)).toEqual(b);
      }),
      { numRuns: 200 },
    );
    await d.close();
  });
});

describe('BlockDriver hooks that break the contract', () => {
  /** A driver whose hooks forgot their `return` (plain JavaScript, or a cast). */
  class Forgetful extends MemoryDriver {
    protected override _read(): Promise<void> {
      return undefined as unknown as Promise<void>;
    }
    protected override _write(): Promise<void> {
      return undefined as unknown as Promise<void>;
    }
    protected override _flush(): Promise<void> {
      return null as unknown as Promise<void>;
    }
  }

  it('a hook that returns no promise fails the request with EIO, leaks no in-flight slot, and close() completes', async () => {
    const d = new Forgetful({ size: 4096 });
    for (const call of [() => d.read(0, 512), () => d.readInto(0, new Uint8Array(512)), () => d.write(0, new Uint8Array(512)), () => d.flush()]) {
      let promise: Promise<unknown> | undefined;
      expect(() => (promise = call())).not.toThrow();
      await expect(promise).rejects.toMatchObject({ code: 'EIO', message: expect.stringContaining('not a promise') });
    }
    expect(d.inFlight).toBe(0);
    await d.close();
    expect(d.state).toBe('closed');
  });
});

describe('BlockDriver close event', () => {
  it('a close listener that throws becomes a warning: the other listeners run and close() resolves', async () => {
    const d = new MemoryDriver({ size: 4096 });
    const heard: string[] = [];
    d.on('close', () => {
      throw new Error('listener bug');
    });
    d.once('close', () => heard.push('second'));
    const warnings: { message: string; code?: string }[] = [];
    const onWarning = (w: Error & { code?: string }): void => void warnings.push({ message: w.message, code: w.code });
    process.on('warning', onWarning);
    try {
      await expect(d.close()).resolves.toBeUndefined();
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    expect(heard).toEqual(['second']);
    expect(d.listenerCount('close')).toBe(1); // the once-listener removed itself
    expect(warnings).toContainEqual({ message: expect.stringContaining('listener bug'), code: 'BLOCKGRAPH_LISTENER' });
  });
});
