/**
 * The serialized form: hand-built fixtures (an encoder written here, checksummed by node:zlib),
 * round trips, and rejection of damaged images.
 */
import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BITMAP_FORMAT_VERSION, BITMAP_MAGIC, DirtyBitmap } from '../../src/bitmap/index.js';
import { crc32 } from '../../src/bitmap/crc32.js';
import { ranges, smallGeometry } from './arbitraries.js';
import { ArrayModel } from './model.js';

const einval = expect.objectContaining({ name: 'BlockError', code: 'EINVAL' });

/** Writes an image byte by byte from the documented layout; fields can be overridden to break it. */
function fixture(
  size: number,
  granularity: number,
  dirty: number[],
  edit: { magic?: number[]; version?: number; log2?: number; reserved?: number; padding?: boolean } = {},
): Uint8Array {
  const granules = Math.ceil(size / granularity);
  const n = Math.ceil(granules / 8);
  const out = new Uint8Array(16 + n + 4);
  out.set(edit.magic ?? [0x42, 0x47, 0x44, 0x42], 0); // "BGDB"
  out[4] = edit.version ?? 1;
  out[5] = edit.log2 ?? Math.log2(granularity);
  out[6] = edit.reserved ?? 0;
  let s = size;
  for (let i = 8; i < 16; i++) {
    out[i] = s % 256;
    s = Math.floor(s / 256);
  }
  for (const g of dirty) out[16 + Math.floor(g / 8)] |= 1 << (g % 8);
  if (edit.padding === true) out[16 + n - 1] |= 0x80;
  const c = zlibCrc32(out.subarray(0, 16 + n));
  for (let i = 0; i < 4; i++) out[16 + n + i] = (c >>> (8 * i)) & 0xff;
  return out;
}

describe('crc32', () => {
  it('matches node:zlib on any bytes', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => crc32(bytes) === zlibCrc32(bytes)), { numRuns: 200 });
  });
});

describe('format', () => {
  it('exports its magic and version', () => {
    expect([...BITMAP_MAGIC]).toEqual([...new TextEncoder().encode('BGDB')]);
    expect(BITMAP_FORMAT_VERSION).toBe(1);
  });

  it('serialize writes exactly the documented bytes', () => {
    fc.assert(
      fc.property(
        smallGeometry.chain((g) => fc.tuple(fc.constant(g), ranges(g))),
        ([g, parts]) => {
          const b = new DirtyBitmap(g);
          const m = new ArrayModel(g.size, g.granularity);
          for (const p of parts) {
            b.set(p.offset, p.length);
            m.set(p.offset, p.length);
          }
          expect(b.serialize()).toEqual(fixture(g.size, g.granularity, m.dirtyGranules()));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a 1 TiB image carries a size above 2^32 and the bits at their place', () => {
    const b = new DirtyBitmap({ size: 2 ** 40 + 513, granularity: 2 ** 20 });
    b.set(2 ** 40, 513);
    b.set(3 * 2 ** 20, 1);
    const want = fixture(2 ** 40 + 513, 2 ** 20, [3, 2 ** 20]);
    expect(b.serialize()).toEqual(want);
    const back = DirtyBitmap.deserialize(want);
    expect([...back.extents()]).toEqual([
      { offset: 3 * 2 ** 20, length: 2 ** 20 },
      { offset: 2 ** 40, length: 513 },
    ]);
  });

  it('deserialize(serialize(b)) keeps size, granularity, count and every bit', () => {
    fc.assert(
      fc.property(
        smallGeometry.chain((g) => fc.tuple(fc.constant(g), ranges(g))),
        ([g, parts]) => {
          const b = new DirtyBitmap(g);
          for (const p of parts) b.set(p.offset, p.length);
          const back = DirtyBitmap.deserialize(b.serialize());
          expect([back.size, back.granularity, back.count, back.dirtyBytes]).toEqual([b.size, b.granularity, b.count, b.dirtyBytes]);
          expect([...back.extents()]).toEqual([...b.extents()]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('reads images from a view with a non-zero byte offset', () => {
    const image = fixture(100_000, 4096, [0, 5, 24]);
    const host = new Uint8Array(image.length + 3);
    host.set(image, 3);
    expect(DirtyBitmap.deserialize(host.subarray(3)).count).toBe(3);
  });
});

describe('damaged images are rejected with EINVAL', () => {
  const image = fixture(40 * 4096 + 100, 4096, [0, 7, 8, 31, 32, 40]);

  it('every truncation, and any extra byte', () => {
    for (let len = 0; len < image.length; len++) expect(() => DirtyBitmap.deserialize(image.subarray(0, len)), `length ${len}`).toThrow(einval);
    const longer = new Uint8Array(image.length + 1);
    longer.set(image);
    expect(() => DirtyBitmap.deserialize(longer)).toThrow(einval);
  });

  it('every single-bit flip anywhere', () => {
    for (let i = 0; i < image.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const bad = image.slice();
        bad[i] ^= 1 << bit;
        expect(() => DirtyBitmap.deserialize(bad), `byte ${i} bit ${bit}`).toThrow(einval);
      }
    }
  });

  it('random damage to random images', () => {
    fc.assert(
      fc.property(
        smallGeometry.chain((g) => fc.tuple(fc.constant(g), ranges(g))),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        ([g, parts], where, xor) => {
          const b = new DirtyBitmap(g);
          for (const p of parts) b.set(p.offset, p.length);
          const bad = b.serialize();
          bad[where % bad.length] ^= xor;
          expect(() => DirtyBitmap.deserialize(bad)).toThrow(einval);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('well-checksummed images with a bad field', () => {
    const cases: [string, Uint8Array][] = [
      ['magic', fixture(8192, 4096, [], { magic: [0x42, 0x47, 0x44, 0x43] })],
      ['version 0', fixture(8192, 4096, [], { version: 0 })],
      ['version 2', fixture(8192, 4096, [], { version: 2 })],
      ['granularity 2^8', fixture(8192, 4096, [], { log2: 8 })],
      ['granularity 2^32', fixture(8192, 4096, [], { log2: 32 })],
      ['reserved', fixture(8192, 4096, [], { reserved: 1 })],
      ['padding bit', fixture(8192 + 1, 4096, [0], { padding: true })],
      ['size 2^53', fixture(2 ** 53, 2 ** 31, [])],
    ];
    for (const [what, bytes] of cases) expect(() => DirtyBitmap.deserialize(bytes), what).toThrow(einval);
  });

  it('a header claiming a huge device with a short body fails without allocating it', () => {
    const small = fixture(4096, 512, [1]);
    const view = new DataView(small.buffer);
    view.setUint32(12, 2 ** 20, true); // size ≈ 2^52 bytes: 2^43 bits the image does not carry
    const c = zlibCrc32(small.subarray(0, small.length - 4));
    view.setUint32(small.length - 4, c, true);
    expect(() => DirtyBitmap.deserialize(small)).toThrow(einval);
  });
});

describe('the exported magic', () => {
  it('is a copy: writing into it changes neither what serialize writes nor what deserialize accepts', () => {
    const b = new DirtyBitmap({ size: 1 << 20, granularity: 4096 });
    b.set(8192, 1);
    const before = b.serialize();
    const saved = BITMAP_MAGIC.slice();
    BITMAP_MAGIC[0] = 0x58;
    try {
      expect(b.serialize()).toEqual(before);
      expect(DirtyBitmap.deserialize(before).count).toBe(1);
    } finally {
      BITMAP_MAGIC.set(saved);
    }
  });
});
