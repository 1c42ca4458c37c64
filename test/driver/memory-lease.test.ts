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
  | { readonly op: 'write'; readonly r: { offset: number; length: number }; readonly seed: number; readonly immutable: boolean; readonly spare: number }
  | { readonly op: 'zero' | 'unmap' | 'discard' | 'lease' | 'release' | 'read'; readonly r: { offset: number; length: number } };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  // spare: the data is a view of a buffer (1 + spare) times its length.
  fc.record({ op: fc.constant('write' as const), r: rangeArb, seed: fc.nat(200), immutable: fc.boolean(), spare: fc.constantFrom(0, 0, 1, 3, 5) }),
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

  it('model: leases and adopted data never change, reads always match the model, and an adopted buffer is kept only while much of it is used', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 30 }), async (steps) => {
        const d = new MemoryDriver({ size: SIZE, chunkSize: CHUNK });
        const disk = new Uint8Array(SIZE);
        const adopted: { data: Uint8Array; copy: Uint8Array; freed: () => boolean }[] = [];
        const held: { lease: ReadLease; copy: Uint8Array }[] = [];
        for (const s of steps) {
          const { offset, length } = s.r;
          if (s.op === 'write') {
            const data = new Uint8Array(new ArrayBuffer(length * (1 + s.spare)), s.spare * (length / 2), length);
            data.set(bytes(length, s.seed));
            let freed = false;
            if (s.immutable) trackBuffer(data, () => (freed = true));
            await d.write(offset, data, { immutable: s.immutable });
            disk.set(data, offset);
            if (s.immutable) {
              adopted.push({ data, copy: data.slice(), freed: () => freed });
              releaseBuffer(data); // the writer's own hold
            } else data.fill(0xee);
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
          // Holds on each adopted buffer: one per chunk the driver keeps of it, one per view a
          // held lease has; the driver keeps none of a buffer it uses a quarter or less of.
          const now = (await d.leaseRead(0, SIZE)) as ReadLease;
          for (const a of adopted) {
            const kept = now.views.filter((v) => v.buffer === a.data.buffer).length;
            const lent = held.reduce((n, h) => n + h.lease.views.filter((v) => v.buffer === a.data.buffer).length, 0);
            expect(bufferHolds(a.data) - kept).toBe(lent + kept);
            if (kept > 0) expect(kept * CHUNK * 4).toBeGreaterThan(a.data.buffer.byteLength);
            expect(a.freed()).toBe(kept + lent === 0);
          }
          now.release();
        }
        expectSameBytes(await d.read(0, SIZE), disk, 'whole disk');
        for (const h of held) h.lease.release();
        await d.close();
        for (const a of adopted) expect(a.freed()).toBe(true);
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

  it('copies out what is left of a shared buffer once it uses a quarter or less of it, so the buffer can go', async () => {
    // A quorum's shared 2 MiB writes (32 chunks each) adopted by two replicas, then mostly discarded.
    const replicas = [new MemoryDriver({ size: 8 * 32 * CS, chunkSize: CS }), new MemoryDriver({ size: 8 * 32 * CS, chunkSize: CS })];
    const writes = Array.from({ length: 8 }, (_, k) => {
      const data = new Uint8Array(new ArrayBuffer(32 * CS)).fill(k + 1);
      const w = { data, freed: false };
      trackBuffer(data, () => (w.freed = true));
      return w;
    });
    for (const [k, w] of writes.entries()) {
      for (const r of replicas) await r.write(k * 32 * CS, w.data, { immutable: true });
      releaseBuffer(w.data);
    }
    // Keep the last 9 chunks of each: more than a quarter, still shared.
    for (const r of replicas) for (let k = 0; k < 8; k++) await r.discard(k * 32 * CS, 23 * CS);
    expect(writes.map((w) => bufferHolds(w.data))).toEqual(Array(8).fill(18));
    // One more chunk each: 8 of 32 left, a quarter — copied out, every buffer let go.
    for (const r of replicas) for (let k = 0; k < 8; k++) await r.discard(k * 32 * CS + 23 * CS, CS);
    expect(writes.map((w) => w.freed)).toEqual(Array(8).fill(true));
    for (const r of replicas) {
      for (let k = 0; k < 8; k++) {
        const got = await r.read(k * 32 * CS + 23 * CS, 9 * CS);
        expect(got.subarray(0, CS).every((b) => b === 0)).toBe(true);
        expect(got.subarray(CS).every((b) => b === k + 1)).toBe(true);
      }
      expect(r.allocatedBytes).toBe(8 * 8 * CS);
      await r.close();
    }
  });

  it('one buffer adopted at hundreds of scattered places: holds stay exact, and it is let go with its last chunk', async () => {
    const PLACES = 600;
    const d = new MemoryDriver({ size: 2 * PLACES * CS, chunkSize: CS });
    const data = new Uint8Array(CS).fill(4);
    let freed = 0;
    trackBuffer(data, () => freed++);
    // Every other chunk, in two interleaved passes: no adoption extends the previous range.
    for (const k of [...Array(PLACES).keys()].sort((a, b) => (a % 2) - (b % 2) || a - b)) await d.write(2 * k * CS, data, { immutable: true });
    releaseBuffer(data);
    expect(bufferHolds(data)).toBe(PLACES);
    for (let k = 0; k < PLACES - 1; k++) await d.discard(2 * k * CS, CS);
    expect({ holds: bufferHolds(data), freed }).toEqual({ holds: 1, freed: 0 });
    expect((await d.read(2 * (PLACES - 1) * CS, CS)).every((b) => b === 4)).toBe(true);
    expect((await d.read(0, CS)).every((b) => b === 0)).toBe(true);
    await d.discard(2 * (PLACES - 1) * CS, CS);
    expect({ holds: bufferHolds(data), freed }).toEqual({ holds: 0, freed: 1 });
    await d.close();
  });

  it('copies an immutable write that is a small view of a large buffer instead of keeping the buffer alive', async () => {
    const d = new MemoryDriver({ size: 4 * CS, chunkSize: CS });
    const big = new Uint8Array(new ArrayBuffer(16 * CS));
    const data = big.subarray(4 * CS, 6 * CS).fill(3);
    let freed = false;
    trackBuffer(data, () => (freed = true));
    await d.write(0, data, { immutable: true });
    releaseBuffer(data);
    expect(freed).toBe(true);
    big.fill(0);
    expect((await d.read(0, 2 * CS)).every((b) => b === 3)).toBe(true);
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
