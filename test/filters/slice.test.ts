/**
 * Slice and Offset: a window of the child, addressed from 0, that never touches bytes outside it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { Offset } from '../../src/filters/offset.js';
import { Slice } from '../../src/filters/slice.js';
import { blockDriverSuite } from '../conformance/index.js';
import { Reshape, sameBytes } from './helpers.js';

blockDriverSuite({
  name: 'Slice (odd window in a larger child)',
  factory: ({ size }) => new Slice(new MemoryDriver({ size: 12_345 + size + 999 }), { offset: 12_345, length: size }),
});
blockDriverSuite({
  name: 'Slice (512-byte blocks)',
  factory: ({ size }) => new Slice(new Reshape(new MemoryDriver({ size: size + 4096 }), { limits: { minBlockSize: 512 } }), { offset: 1024, length: size }),
});
blockDriverSuite({ name: 'Offset', factory: ({ size }) => new Offset(new MemoryDriver({ size: 7777 + size }), { offset: 7777 }) });

const CHILD = 16_384;

/** A child prefilled with a recognisable pattern, so that stray writes show. */
async function patterned(size = CHILD): Promise<{ child: MemoryDriver; bytes: Uint8Array }> {
  const child = new MemoryDriver({ size, chunkSize: 512 });
  const bytes = new Uint8Array(size).map((_, i) => (i * 7 + 3) & 0xff);
  await child.write(0, bytes);
  return { child, bytes };
}

const windowArb = fc
  .integer({ min: 0, max: CHILD })
  .chain((offset) => fc.tuple(fc.constant(offset), fc.integer({ min: 0, max: CHILD - offset })));

describe('Slice', () => {
  it('writes, zeroes and discards land shifted by the window offset and nowhere else', async () => {
    const opArb = fc.record({
      kind: fc.constantFrom('write', 'writeZeroes', 'discard'),
      at: fc.nat(),
      len: fc.integer({ min: 1, max: 2000 }),
      fill: fc.integer({ min: 1, max: 255 }),
    });
    await fc.assert(
      fc.asyncProperty(windowArb.filter(([, l]) => l > 0), fc.array(opArb, { maxLength: 12 }), async ([offset, length], ops) => {
        const { child, bytes } = await patterned();
        const s = new Slice(child, { offset, length });
        expect(s.size).toBe(length);
        for (const op of ops) {
          const at = op.at % length;
          const len = Math.min(op.len, length - at);
          if (op.kind === 'write') {
            await s.write(at, new Uint8Array(len).fill(op.fill));
            bytes.fill(op.fill, offset + at, offset + at + len);
          } else {
            if (op.kind === 'writeZeroes') await s.writeZeroes(at, len);
            else await s.discard(at, len);
            // MemoryDriver zeroes what it does not free, so a discard reads back as zeros too.
            bytes.fill(0, offset + at, offset + at + len);
          }
          expect(sameBytes(await s.read(0, length), bytes.subarray(offset, offset + length))).toBe(true);
        }
        expect(sameBytes(await child.read(0, CHILD), bytes)).toBe(true);
        await s.close();
      }),
      { numRuns: 150 },
    );
  });

  it('requests past the window fail (ENOSPC for writes, EINVAL for reads) and leave the child alone', async () => {
    await fc.assert(
      fc.asyncProperty(windowArb, fc.integer({ min: 1, max: 100 }), async ([offset, length], over) => {
        const { child, bytes } = await patterned();
        const s = new Slice(child, { offset, length });
        await expect(s.write(length - Math.min(length, 1), new Uint8Array(over + 1))).rejects.toMatchObject({ code: 'ENOSPC' });
        await expect(s.writeZeroes(length, over)).rejects.toMatchObject({ code: 'ENOSPC' });
        await expect(s.read(length, over)).rejects.toMatchObject({ code: 'EINVAL' });
        await expect(s.discard(0, length + over)).rejects.toMatchObject({ code: 'EINVAL' });
        await expect(s.blockStatus(0, length + over)).rejects.toMatchObject({ code: 'EINVAL' });
        expect(sameBytes(await child.read(0, CHILD), bytes)).toBe(true);
        await s.close();
      }),
      { numRuns: 100 },
    );
  });

  it('block status is the child’s, shifted into the window', async () => {
    await fc.assert(
      fc.asyncProperty(
        windowArb.filter(([, l]) => l > 0),
        fc.array(fc.tuple(fc.nat({ max: CHILD - 1 }), fc.integer({ min: 1, max: 3000 })), { maxLength: 6 }),
        fc.tuple(fc.nat(), fc.nat()),
        async ([offset, length], writes, [a, b]) => {
          const child = new MemoryDriver({ size: CHILD, chunkSize: 512 });
          for (const [at, len] of writes) await child.write(at, new Uint8Array(Math.min(len, CHILD - at)).fill(1));
          const s = new Slice(child, { offset, length });
          const from = a % length;
          const len = 1 + (b % (length - from));
          const got = await s.blockStatus(from, len);
          const want = (await child.blockStatus(offset + from, len)).map((e) => ({ ...e, offset: e.offset - offset }));
          expect(got).toEqual(want);
          expect(got[0].offset).toBe(from);
          await s.close();
        },
      ),
      { numRuns: 150 },
    );
  });

  it('validates the window at construction', () => {
    const child = new MemoryDriver({ size: 4096 });
    const bad: [number, number][] = [
      [-1, 10],
      [0, -1],
      [1.5, 10],
      [0, 4097],
      [4000, 97],
      [4097, 0],
      [Number.NaN, 1],
    ];
    for (const [offset, length] of bad) expect(() => new Slice(child, { offset, length })).toThrow(RangeError);
    expect(new Slice(child, { offset: 4096, length: 0 }).size).toBe(0);
    const blocky = new Reshape(new MemoryDriver({ size: 8192 }), { limits: { minBlockSize: 512 } });
    expect(() => new Slice(blocky, { offset: 100, length: 512 })).toThrow(/aligned/);
    expect(() => new Slice(blocky, { offset: 512, length: 100 })).toThrow(/aligned/);
    expect(new Slice(blocky, { offset: 512, length: 1024 }).limits.minBlockSize).toBe(512);
  });
});

describe('Offset', () => {
  it('is the child from offset to its end', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: CHILD }), fc.uint8Array({ minLength: 1, maxLength: 300 }), async (offset, data) => {
        const { child, bytes } = await patterned();
        const o = new Offset(child, { offset });
        expect(o.size).toBe(CHILD - offset);
        expect(o.offset).toBe(offset);
        if (o.size > 0) {
          const at = Math.max(0, o.size - data.length);
          const piece = data.subarray(0, Math.min(data.length, o.size));
          await o.write(at, piece);
          bytes.set(piece, offset + at);
          expect(sameBytes(await o.read(0, o.size), bytes.subarray(offset))).toBe(true);
        }
        expect(sameBytes(await child.read(0, CHILD), bytes)).toBe(true);
        await o.close();
      }),
      { numRuns: 100 },
    );
  });

  it('rejects offsets past the end or off the child’s block size', () => {
    const child = new MemoryDriver({ size: 4096 });
    for (const offset of [-1, 4097, 0.5, Number.NaN]) expect(() => new Offset(child, { offset })).toThrow(RangeError);
    const blocky = new Reshape(new MemoryDriver({ size: 8192 }), { limits: { minBlockSize: 4096 } });
    expect(() => new Offset(blocky, { offset: 512 })).toThrow(/aligned/);
    expect(new Offset(blocky, { offset: 4096 }).size).toBe(4096);
    expect(() => new Offset({} as MemoryDriver, { offset: 0 })).toThrow(TypeError);
  });
});
