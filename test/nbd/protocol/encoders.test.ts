import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockError } from '../../../src/errors.js';
import {
  cookieFromBigInt,
  cookieToBigInt,
  encodeAck,
  encodeBlockStatusChunk,
  encodeChunkHeader,
  encodeClientFlags,
  encodeErrorChunk,
  encodeExportNameOption,
  encodeExportNameReply,
  encodeGreeting,
  encodeHoleChunk,
  encodeInfoBlockSize,
  encodeInfoDescription,
  encodeInfoExport,
  encodeInfoName,
  encodeInfoOption,
  encodeMetaContextOption,
  encodeMetaContextReply,
  encodeOption,
  encodeOptionError,
  encodeServerReply,
  encodeSimpleReply,
  encodeRequestHeader,
  readU64,
  writeChunkHeader,
  writeOffsetDataHeader,
  writeRequestHeader,
  writeSimpleReply,
  writeU64,
} from '../../../src/nbd/protocol/index.js';
import { decodeLenientString, decodeStrictString } from '../../../src/nbd/protocol/bytes.js';
import { cookieArb, halves, wire } from './wire.js';

const REP = 0x3e889045565a9n;
const req = { cookieHi: 0x01020304, cookieLo: 0x05060708, offset: 2 ** 40 + 5 };

describe('handshake serializers', () => {
  it('lay out greeting, flags and options as the spec lists them', () => {
    expect(encodeGreeting(3)).toEqual(wire().ascii('NBDMAGIC').ascii('IHAVEOPT').u16(3).build());
    expect(encodeClientFlags(3)).toEqual(wire().u32(3).build());
    expect(encodeOption(8)).toEqual(wire().ascii('IHAVEOPT').u32(8).u32(0).build());
    expect(encodeExportNameOption('d')).toEqual(wire().ascii('IHAVEOPT').u32(1).u32(1).ascii('d').build());
    expect(encodeInfoOption(7, 'ab', [3, 0])).toEqual(wire().ascii('IHAVEOPT').u32(7).u32(12).u32(2).ascii('ab').u16(2).u16(3).u16(0).build());
    expect(encodeMetaContextOption(10, 'ab', ['base:allocation'])).toEqual(
      wire().ascii('IHAVEOPT').u32(10).u32(29).u32(2).ascii('ab').u32(1).u32(15).ascii('base:allocation').build(),
    );
  });

  it('lay out option replies as the spec lists them', () => {
    expect(encodeAck(7)).toEqual(wire().u64(REP).u32(7).u32(1).u32(0).build());
    expect(encodeServerReply(3, 'a', 'bc')).toEqual(wire().u64(REP).u32(3).u32(2).u32(7).u32(1).ascii('abc').build());
    expect(encodeInfoExport(7, 2 ** 50, 0x10d)).toEqual(wire().u64(REP).u32(7).u32(3).u32(12).u16(0).u64(2n ** 50n).u16(0x10d).build());
    expect(encodeInfoName(7, 'n')).toEqual(wire().u64(REP).u32(7).u32(3).u32(3).u16(1).ascii('n').build());
    expect(encodeInfoDescription(7, 'd')).toEqual(wire().u64(REP).u32(7).u32(3).u32(3).u16(2).ascii('d').build());
    expect(encodeInfoBlockSize(7, 1, 4096, 2 ** 25)).toEqual(wire().u64(REP).u32(7).u32(3).u32(14).u16(3).u32(1).u32(4096).u32(2 ** 25).build());
    expect(encodeMetaContextReply(10, 1, 'base:allocation')).toEqual(wire().u64(REP).u32(10).u32(4).u32(19).u32(1).ascii('base:allocation').build());
    expect(encodeOptionError(99, 2 ** 31 + 1, 'no')).toEqual(wire().u64(REP).u32(99).u32(2 ** 31 + 1).u32(2).ascii('no').build());
    expect(encodeExportNameReply(512, 1, true)).toEqual(wire().u64(512n).u16(1).build());
  });

  it('refuse values the protocol cannot carry', () => {
    const cases: (() => unknown)[] = [
      () => encodeExportNameOption('x'.repeat(4097)),
      () => encodeExportNameOption('a\0b'),
      () => encodeInfoOption(7, 'a', [0x10000]),
      () => encodeInfoOption(3 as 7, 'a'),
      () => encodeMetaContextOption(7 as 9, 'a', []),
      () => encodeOption(-1),
      () => encodeInfoExport(7, 2 ** 63, 1),
      () => encodeInfoExport(7, 1.5, 1),
      () => encodeExportNameReply(-1, 1, false),
      () => encodeOptionError(1, 3, 'not an error type'),
      () => encodeGreeting(0x10000),
      () => encodeMetaContextReply(10, 2 ** 32, 'x'),
    ];
    for (const c of cases) expect(c).toThrow(BlockError);
    expect(() => encodeExportNameOption(5 as unknown as string)).toThrow(TypeError);
  });
});

describe('transmission serializers', () => {
  it('write request headers at an offset inside a caller buffer', () => {
    const buf = Buffer.alloc(70, 0xee);
    expect(writeRequestHeader(buf, 3, false, 1, 1, req.cookieHi, req.cookieLo, 4096, 512)).toBe(28);
    expect(writeRequestHeader(buf, 31, true, 4, 0, 0, 9, 2 ** 53 - 1, 2 ** 40)).toBe(32);
    expect(buf.subarray(3, 31)).toEqual(wire().u32(0x25609513).u16(1).u16(1).u64(0x0102030405060708n).u64(4096n).u32(512).build());
    expect(buf.subarray(31, 63)).toEqual(wire().u32(0x21e41c71).u16(0).u16(4).u64(9n).u64(2n ** 53n - 1n).u64(2n ** 40n).build());
    expect(buf[2]).toBe(0xee);
    expect(buf[63]).toBe(0xee);
    expect(() => encodeRequestHeader(false, 4, 0, 0, 0, 0, 2 ** 32)).toThrow(BlockError);
  });

  it('extended chunk headers echo any u64 offset exactly from its raw halves', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (offset) => {
        const target = { cookieHi: 1, cookieLo: 2, offset: Number(offset), offsetHi: Number(offset >> 32n), offsetLo: Number(offset & 0xffffffffn) };
        for (const chunk of [encodeErrorChunk(true, target, 1, 22, 'x'), encodeChunkHeader(true, target, 1, 0, 0)]) {
          expect(chunk.readBigUInt64BE(16)).toBe(offset);
        }
      }),
      { numRuns: 300 },
    );
    // Without the halves, an offset a double cannot hold as a u64 is refused with a BlockError.
    expect(() => encodeChunkHeader(true, { cookieHi: 0, cookieLo: 0, offset: 2 ** 64 }, 1, 0, 0)).toThrow(BlockError);
  });

  it('write reply headers at an offset inside a caller buffer', () => {
    const buf = Buffer.alloc(200, 0xee);
    expect(writeSimpleReply(buf, 1, req, 22)).toBe(16);
    expect(writeChunkHeader(buf, 17, false, req, 1, 5, 12)).toBe(20);
    expect(writeChunkHeader(buf, 37, true, req, 1, 0, 0)).toBe(32);
    expect(writeOffsetDataHeader(buf, 69, false, req, 0, 7, 100)).toBe(28);
    expect(writeOffsetDataHeader(buf, 97, true, req, 1, 7, 100)).toBe(40);
    const cookie = 0x0102030405060708n;
    expect(buf.subarray(0, 137)).toEqual(
      wire()
        .u8(0xee)
        .u32(0x67446698).u32(22).u64(cookie)
        .u32(0x668e33ef).u16(1).u16(5).u64(cookie).u32(12)
        .u32(0x6e8a278c).u16(1).u16(0).u64(cookie).u64(BigInt(req.offset)).u64(0n)
        .u32(0x668e33ef).u16(0).u16(1).u64(cookie).u32(108).u64(7n)
        .u32(0x6e8a278c).u16(1).u16(1).u64(cookie).u64(BigInt(req.offset)).u64(108n).u64(7n)
        .build(),
    );
    expect(buf[137]).toBe(0xee);
    expect(encodeSimpleReply(req, 0)).toEqual(wire().u32(0x67446698).u32(0).u64(cookie).build());
    expect(encodeChunkHeader(false, req, 1, 5, 12)).toEqual(buf.subarray(17, 37));
  });

  it('refuse chunks the protocol forbids', () => {
    const cases: (() => unknown)[] = [
      () => writeOffsetDataHeader(Buffer.alloc(40), 0, false, req, 0, 0, 0),
      () => encodeHoleChunk(false, req, 0, 0, 0),
      () => encodeHoleChunk(false, req, 0, 0, 2 ** 32),
      () => encodeBlockStatusChunk(false, req, 0, 1, []),
      () => encodeBlockStatusChunk(false, req, 0, 1, [{ length: 0, flags: 0 }]),
      () => encodeBlockStatusChunk(false, req, 0, 1, [{ length: 2 ** 32, flags: 0 }]),
      () => encodeBlockStatusChunk(false, req, 0, 1, [{ length: 1, flags: 0 }], true),
      () => encodeErrorChunk(false, req, 1, 0),
      () => encodeErrorChunk(false, req, 1, 5, 'x'.repeat(5000)),
      () => encodeChunkHeader(false, req, 0, 1, 2 ** 32),
    ];
    for (const c of cases) expect(c).toThrow(BlockError);
  });
});

describe('byte helpers', () => {
  it('names keep a leading byte-order mark (U+FEFF): it is part of the name, not an encoding hint', () => {
    const name = '\uFEFFbom';
    const bytes = Buffer.from(name, 'utf8');
    expect(decodeStrictString(bytes)).toBe(name);
    expect(decodeLenientString(bytes)).toBe(name);
  });

  it('cookies survive the split into halves and back', () => {
    fc.assert(
      fc.property(cookieArb, (c) => {
        expect(cookieFromBigInt(c)).toEqual(halves(c));
        const { cookieHi, cookieLo } = cookieFromBigInt(c);
        expect(cookieToBigInt(cookieHi, cookieLo)).toBe(c);
      }),
    );
  });

  it('u64 fields are exact below 2^53 and rounded, never wrapped, above', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => {
        const b = wire().u64(v).build();
        expect(readU64(b, 0)).toBe(Number(v));
        if (Number(v) < 2 ** 64) {
          const out = Buffer.alloc(8);
          writeU64(out, 0, Number(v));
          expect(BigInt('0x' + out.toString('hex'))).toBe(BigInt(Number(v)));
        }
      }),
    );
    expect(() => writeU64(Buffer.alloc(8), 0, 2 ** 64)).toThrow(BlockError);
    expect(() => writeU64(Buffer.alloc(8), 0, -1)).toThrow(BlockError);
    expect(() => writeU64(Buffer.alloc(8), 0, NaN)).toThrow(BlockError);
  });
});
