/**
 * MemoryDriver's lending beyond the conformance suite: requests aligned to its chunks, where it
 * lends and adopts whole chunks, so copy-on-write is exercised on every path (write, writeZeroes
 * with and without unmap, discard) rather than by chance.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import type { ReadLease } from '../../src/types.js';
import { bufferHolds, releaseBuffer, trackBuffer } from '../../src/buffers/ownership.js';
import { expectSameBytes } from '../helpers/bytes.js';

const CHUNK = 4096;
const CHUNKS = 16;
const SIZE = CHUNK * CHUNKS;

function joined(lease: ReadLease): Buffer {
  return Buffer.concat(lease.views);
}

function bytes(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => ((i * 7 + seed) % 255) + 1);
}

/** Ranges on half-chunk boundaries: whole chunks, halves, and runs across several chunks. */
const rangeArb = fc
  .tuple(fc.integer({ min: 0, max: 2 * CHUNKS - 1 }), fc.integer({ min: 1, max: 8 }))
  .map(([start, n]) => ({ offset: (start * CHUNK) / 2, length: (Math.min(n, 2 * CHUNKS - start) * CHUNK) / 2 }));

type Step =
  | { readonly op: 'write'; readonly r: { offset: number; length: number }; readonly seed: number; readonly immutable: boolean }
  | { readonly op: 'zero' | 'unmap' | 'discard' | 'lease' | 'release' | 'read'; readonly r: { offset: number; length: number } };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constant('write' as const), r: rangeArb, seed: fc.nat(200), immutable: fc.boolean() }),
  fc.record({ op: fc.constantFrom('zero' as const, 'unmap' as const, 'discard' as const, 'lease' as const, 'release' as const, 'read' as const), r: rangeArb }),
);

describe('MemoryDriver lending', () => {
  it('adopts a chunk-aligned immutable write: a lease then shows the caller\'s own memory', async () => {
    const d = new MemoryDriver({ size: SIZE, chunkSize: CHUNK });
    const data = bytes(2 * CHUNK, 1);
    await d.write(CHUNK, data, { immutable: true });
    const lease = await d.leaseRead(CHUNK, 2 * CHUNK);
    expect(lease?.views.map((v) => v.buffer === data.buffer)).toEqual([true, true]);
    lease?.release();
    // A later partial write copies the adopted chunk instead of writing into the caller's data.
    await d.write(CHUNK + 10, new Uint8Array([0]));
    expectSameBytes(data, bytes(2 * CHUNK, 1), 'adopted data');
    expect((await d.read(CHUNK + 10, 1))[0]).toBe(0);
    await d.close();
  });

  it('lends unallocated ranges as zeros without allocating', async () => {
    const d = new MemoryDriver({ size: SIZE, chunkSize: CHUNK });
    const lease = await d.leaseRead(100, 3 * CHUNK);
    expect(lease?.views.reduce((n, v) => n + v.length, 0)).toBe(3 * CHUNK);
    expect(joined(lease as ReadLease).every((b) => b === 0)).toBe(true);
    expect(d.allocatedBytes).toBe(0);
    lease?.release();
    await d.close();
  });

  it('model: leases and adopted data never change, reads always match the model', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 30 }), async (steps) => {
        const d = new MemoryDriver({ size: SIZE, chunkSize: CHUNK });
        const disk = new Uint8Array(SIZE);
        const adopted: { data: Uint8Array; copy: Uint8Array }[] = [];
        const held: { lease: ReadLease; copy: Uint8Array }[] = [];
        for (const s of steps) {
          const { offset, length } = s.r;
          if (s.op === 'write') {
            const data = bytes(length, s.seed);
            await d.write(offset, data, { immutable: s.immutable });
            disk.set(data, offset);
            if (s.immutable) adopted.push({ data, copy: data.slice() });
            else data.fill(0xee);
          } else if (s.op === 'zero' || s.op === 'unmap') {
            await d.writeZeroes(offset, length, { mayUnmap: s.op === 'unmap' });
            disk.fill(0, offset, offset + length);
          } else if (s.op === 'discard') {
            await d.discard(offset, length);
            disk.fill(0, offset, offset + length);
          } else if (s.op === 'lease') {
            const lease = (await d.leaseRead(offset, length)) as ReadLease;
            const copy = joined(lease);
            expectSameBytes(copy, disk.subarray(offset, offset + length), 'new lease');
            held.push({ lease, copy });
          } else if (s.op === 'release') {
            held.shift()?.lease.release();
          } else {
            expectSameBytes(await d.read(offset, length), disk.subarray(offset, offset + length), 'read');
          }
          for (const a of adopted) expectSameBytes(a.data, a.copy, 'adopted data');
          for (const h of held) expectSameBytes(joined(h.lease), h.copy, 'held lease');
        }
        expectSameBytes(await d.read(0, SIZE), disk, 'whole disk');
        for (const h of held) h.lease.release();
        await d.close();
      }),
      { numRuns: 150 },
    );
  });
});

describe('MemoryDriver holds on pooled memory', () => {
  const CS = 64 * 1024;

  it('a lease that fails half-way (no memory for its zero view) takes no hold and freezes nothing', async () => {
    const d = new MemoryDriver({ size: 4 * CS, chunkSize: CS });
    const p = new Uint8Array(new ArrayBuffer(CS)).fill(7);
    let freed = false;
    trackBuffer(p, () => (freed = true));
    await d.write(0, p, { immutable: true });
    releaseBuffer(p); // the writer's own hold; the driver's remains
    expect(bufferHolds(p)).toBe(1);
    // The zero view for never-written chunk 1 cannot be allocated.
    const Real = globalThis.Uint8Array;
    globalThis.Uint8Array = new Proxy(Real, {
      construct(target, args, newTarget) {
        if (args.length === 1 && args[0] === CS) throw new RangeError('Array buffer allocation failed');
        return Reflect.construct(target, args, newTarget) as object;
      },
    });
    let failure: unknown;
    try {
      await d.leaseRead(0, 2 * CS);
    } catch (err) {
      failure = err;
    } finally {
      globalThis.Uint8Array = Real;
    }
    expect(failure).toBeDefined();
    expect(bufferHolds(p)).toBe(1);
    await d.write(0, new Uint8Array(CS).fill(1)); // overwritten: the driver lets p go
    expect({ holds: bufferHolds(p), freed }).toEqual({ holds: 0, freed: true });
    await d.close();
  });

  it("an owner's onFree that throws becomes a warning and leaves the driver consistent", async () => {
    const d = new MemoryDriver({ size: 4 * CS, chunkSize: CS });
    const p = new Uint8Array(new ArrayBuffer(2 * CS)).fill(5);
    trackBuffer(p, () => {
      throw new Error('owner bug');
    });
    await d.write(0, p, { immutable: true });
    releaseBuffer(p);
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      // One write replaces both adopted chunks; the last release runs the throwing onFree.
      await d.write(0, new Uint8Array(2 * CS).fill(9));
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.some((m) => m.includes('owner bug'))).toBe(true);
    expect(bufferHolds(p)).toBe(0);
    expect([...(await d.read(0, 2 * CS))].every((b) => b === 9)).toBe(true);
    await d.close();
  });
});
