import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockError } from '../../../src/errors.js';
import {
  NbdProtocolError,
  ReplyParser,
  encodeBlockStatusChunk,
  encodeErrorChunk,
  encodeHoleChunk,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeSimpleReply,
  type NbdReply,
  type ReplyMode,
  type ReplyParserOptions,
} from '../../../src/nbd/protocol/index.js';
import { chunk, cutsArb, halves, largestAllocation, splits, thrown, wire } from './wire.js';

/** One reply message as a test describes it. Offsets are exact (below 2^53). */
type Spec =
  | { kind: 'simple'; cookie: bigint; error: number; data: Buffer }
  | { kind: 'none'; cookie: bigint; reqOffset: number }
  | { kind: 'data'; cookie: bigint; reqOffset: number; flags: number; dataOffset: number; data: Buffer }
  | { kind: 'hole'; cookie: bigint; reqOffset: number; flags: number; holeOffset: number; holeLength: number }
  | { kind: 'status'; cookie: bigint; reqOffset: number; flags: number; contextId: number; wide: boolean; extents: { length: number; flags: number }[] }
  | { kind: 'error'; cookie: bigint; reqOffset: number; flags: number; error: number; message: string; errorOffset?: number };

const TYPES = { none: 0, data: 1, hole: 2, error: 0x8001, errorOffset: 0x8002 } as const;

/** The spec's byte layout, built field by field. */
function build(s: Spec, mode: ReplyMode): Buffer {
  if (s.kind === 'simple') return wire().u32(0x67446698).u32(s.error).u64(s.cookie).bytes(s.error === 0 ? s.data : []).build();
  const body = wire();
  let type: number;
  let flags = s.kind === 'none' ? 1 : s.flags;
  switch (s.kind) {
    case 'none':
      type = TYPES.none;
      flags = 1;
      break;
    case 'data':
      type = TYPES.data;
      body.u64(BigInt(s.dataOffset)).bytes(s.data);
      break;
    case 'hole':
      type = TYPES.hole;
      body.u64(BigInt(s.holeOffset)).u32(s.holeLength);
      break;
    case 'status':
      type = s.wide ? 6 : 5;
      body.u32(s.contextId);
      if (s.wide) body.u32(s.extents.length);
      for (const e of s.extents) {
        if (s.wide) body.u64(BigInt(e.length)).u64(BigInt(e.flags));
        else body.u32(e.length).u32(e.flags);
      }
      break;
    case 'error': {
      type = s.errorOffset === undefined ? TYPES.error : TYPES.errorOffset;
      const text = Buffer.from(s.message);
      body.u32(s.error).u16(text.length).bytes(text);
      if (s.errorOffset !== undefined) body.u64(BigInt(s.errorOffset));
      break;
    }
  }
  const payload = body.build();
  const head = mode === 'extended'
    ? wire().u32(0x6e8a278c).u16(flags).u16(type).u64(s.cookie).u64(BigInt(s.reqOffset)).u64(BigInt(payload.length))
    : wire().u32(0x668e33ef).u16(flags).u16(type).u64(s.cookie).u32(payload.length);
  return Buffer.concat([head.build(), payload]);
}

/** The same message through the server serializers. */
function serialize(s: Spec, mode: ReplyMode): Buffer {
  const ext = mode === 'extended';
  const req = { ...halves(s.cookie), offset: s.kind === 'simple' ? 0 : s.reqOffset };
  switch (s.kind) {
    case 'simple':
      return Buffer.concat([encodeSimpleReply(req, s.error), s.error === 0 ? s.data : Buffer.alloc(0)]);
    case 'none':
      return encodeNoneChunk(ext, req);
    case 'data':
      return Buffer.concat([encodeOffsetDataHeader(ext, req, s.flags, s.dataOffset, s.data.length), s.data]);
    case 'hole':
      return encodeHoleChunk(ext, req, s.flags, s.holeOffset, s.holeLength);
    case 'status':
      return encodeBlockStatusChunk(ext, req, s.flags, s.contextId, s.extents, s.wide);
    case 'error':
      return encodeErrorChunk(ext, req, s.flags, s.error, s.message, s.errorOffset);
  }
}

interface Received {
  reply: NbdReply;
  data?: Buffer;
}

function expected(s: Spec, mode: ReplyMode): Received {
  const { cookieHi, cookieLo } = halves(s.cookie);
  if (s.kind === 'simple') {
    const length = s.error === 0 ? s.data.length : 0;
    const reply: NbdReply = { kind: 'simple', cookieHi, cookieLo, error: s.error, length, done: true };
    return length > 0 ? { reply, data: s.data } : { reply };
  }
  const flags = s.kind === 'none' ? 1 : s.flags;
  const requestOffset = mode === 'extended' ? s.reqOffset : undefined;
  const base = { cookieHi, cookieLo, flags, done: (flags & 1) === 1, requestOffset };
  switch (s.kind) {
    case 'none':
      return { reply: { ...base, type: 0, kind: 'none' } };
    case 'data':
      return { reply: { ...base, type: 1, kind: 'data', dataOffset: s.dataOffset, dataLength: s.data.length }, data: s.data };
    case 'hole':
      return { reply: { ...base, type: 2, kind: 'hole', holeOffset: s.holeOffset, holeLength: s.holeLength } };
    case 'status':
      return { reply: { ...base, type: s.wide ? 6 : 5, kind: 'blockStatus', wide: s.wide, contextId: s.contextId, extents: s.extents } };
    case 'error':
      return {
        reply: { ...base, type: s.errorOffset === undefined ? 0x8001 : 0x8002, kind: 'error', error: s.error, message: s.message, errorOffset: s.errorOffset },
      };
  }
}

/** Parses `chunks`, reassembling streamed data per reply and checking its positions are contiguous. */
function parseChunks(chunks: readonly Buffer[], lengths: ReadonlyMap<bigint, number>, options: ReplyParserOptions, complete = true): Received[] {
  const out: Received[] = [];
  let pieces: Buffer[] = [];
  let nextAt = -1;
  const p = new ReplyParser(
    {
      simpleReplyLength: (hi, lo) => lengths.get((BigInt(hi) << 32n) | BigInt(lo)) ?? -1,
      onData(reply, at, data) {
        const start = reply.kind === 'simple' ? 0 : reply.dataOffset;
        expect(at).toBe(pieces.length === 0 ? start : nextAt);
        expect(data.length).toBeGreaterThan(0);
        pieces.push(Buffer.from(data));
        nextAt = at + data.length;
      },
      onReply(reply) {
        out.push(pieces.length > 0 ? { reply, data: Buffer.concat(pieces) } : { reply });
        pieces = [];
      },
    },
    options,
  );
  for (const c of chunks) p.push(c);
  if (complete) expect(p.idle).toBe(true);
  return out;
}

const offsetArb = fc.oneof(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 0, max: 2 ** 20 }));
const flagsArb = fc.integer({ min: 0, max: 0xffff });
const dataArb = fc.uint8Array({ minLength: 1, maxLength: 500 }).map((b) => Buffer.from(b));

function specArb(mode: ReplyMode): fc.Arbitrary<Omit<Spec, 'cookie'>> {
  const simple = fc.record({ kind: fc.constant('simple' as const), error: fc.oneof(fc.constant(0), fc.nat()), data: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) });
  const r = offsetArb;
  const chunks = [
    fc.record({ kind: fc.constant('none' as const), reqOffset: r }),
    fc.record({ kind: fc.constant('data' as const), reqOffset: r, flags: flagsArb, dataOffset: offsetArb, data: dataArb }),
    fc.record({ kind: fc.constant('hole' as const), reqOffset: r, flags: flagsArb, holeOffset: offsetArb, holeLength: fc.integer({ min: 1, max: 0xffffffff }) }),
    fc.boolean().chain((wideWanted) => {
      const wide = wideWanted && mode === 'extended';
      const len = wide ? fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }) : fc.integer({ min: 1, max: 0xffffffff });
      const fl = wide ? fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }) : fc.nat();
      return fc.record({
        kind: fc.constant('status' as const),
        reqOffset: r,
        flags: flagsArb,
        contextId: fc.nat(),
        wide: fc.constant(wide),
        extents: fc.array(fc.record({ length: len, flags: fl }), { minLength: 1, maxLength: 5 }),
      });
    }),
    fc.record({
      kind: fc.constant('error' as const),
      reqOffset: r,
      flags: flagsArb,
      error: fc.integer({ min: 1, max: 0xffffffff }),
      message: fc.string({ maxLength: 30 }).filter((m) => !m.includes('\0')),
      errorOffset: fc.option(offsetArb, { nil: undefined }),
    }),
  ];
  if (mode === 'simple') return simple;
  if (mode === 'extended') return fc.oneof(...chunks);
  return fc.oneof(simple, ...chunks);
}

function streamArb(mode: ReplyMode): fc.Arbitrary<Spec[]> {
  return fc
    .tuple(fc.array(specArb(mode), { maxLength: 8 }), fc.uniqueArray(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { minLength: 8, maxLength: 8 }))
    .map(([specs, cookies]) => specs.map((s, i) => ({ ...s, cookie: cookies[i] }) as Spec));
}

function readLengths(specs: readonly Spec[]): Map<bigint, number> {
  return new Map(specs.filter((s) => s.kind === 'simple').map((s) => [s.cookie, (s as { data: Buffer }).data.length]));
}

const MODES: ReplyMode[] = ['simple', 'structured', 'extended'];

describe('ReplyParser', () => {
  it('parses a hand-built structured session at every split position', () => {
    const specs: Spec[] = [
      { kind: 'simple', cookie: 1n, error: 0, data: Buffer.from('0123456789') },
      { kind: 'data', cookie: 2n, reqOffset: 0, flags: 0, dataOffset: 4096, data: Buffer.from('abcdef') },
      { kind: 'hole', cookie: 2n, reqOffset: 0, flags: 0, holeOffset: 4102, holeLength: 10 },
      { kind: 'none', cookie: 2n, reqOffset: 0 },
      { kind: 'status', cookie: 3n, reqOffset: 0, flags: 1, contextId: 1, wide: false, extents: [{ length: 512, flags: 3 }, { length: 1024, flags: 0 }] },
      { kind: 'error', cookie: 4n, reqOffset: 0, flags: 1, error: 5, message: 'I/O error', errorOffset: 8192 },
      { kind: 'simple', cookie: 5n, error: 28, data: Buffer.alloc(0) },
    ];
    const stream = Buffer.concat(specs.map((s) => build(s, 'structured')));
    const lengths = new Map([[1n, 10], [5n, 512]]);
    const want = specs.map((s) => expected(s, 'structured'));
    for (const parts of splits(stream)) expect(parseChunks(parts, lengths, { mode: 'structured' })).toEqual(want);
  });

  it('parses hand-built streams under random chunking, and the serializers produce the very same bytes', () => {
    for (const mode of MODES) {
      fc.assert(
        fc.property(streamArb(mode), cutsArb, (specs, cuts) => {
          const stream = Buffer.concat(specs.map((s) => build(s, mode)));
          expect(Buffer.concat(specs.map((s) => serialize(s, mode)))).toEqual(stream);
          expect(parseChunks(chunk(stream, cuts), readLengths(specs), { mode })).toEqual(specs.map((s) => expected(s, mode)));
        }),
        { numRuns: 120 },
      );
    }
  });

  it('streams read data as views of the received chunk', () => {
    const stream = build({ kind: 'data', cookie: 1n, reqOffset: 0, flags: 1, dataOffset: 0, data: Buffer.alloc(4096, 3) }, 'structured');
    const views: Buffer[] = [];
    new ReplyParser({ simpleReplyLength: () => -1, onData: (_r, _at, d) => views.push(d), onReply: () => undefined }, { mode: 'structured' }).push(stream);
    expect(views).toHaveLength(1);
    expect(views[0].buffer).toBe(stream.buffer);
    expect(views[0].byteOffset).toBe(stream.byteOffset + 28);
  });

  it('reads 64-bit fields of 2^53 and more without wrapping them', () => {
    const ext = wire().u32(0x6e8a278c).u16(1).u16(6).u64(1n).u64(2n ** 64n - 1n).u64(24n).u32(9).u32(1).u64(2n ** 60n).u64(2n ** 33n + 1n).build();
    const [got] = parseChunks([ext], new Map(), { mode: 'extended' });
    expect(got.reply).toMatchObject({ kind: 'blockStatus', requestOffset: 2 ** 64, extents: [{ length: 2 ** 60, flags: 2 ** 33 + 1 }] });
  });

  it('delivers unknown error chunk types (bit 15) and goes on', () => {
    const unknownError = wire().u32(0x668e33ef).u16(0).u16(0x8003).u64(9n).u32(10).u32(22).u16(2).ascii('no').ascii('xx').build();
    const none = build({ kind: 'none', cookie: 9n, reqOffset: 0 }, 'structured');
    const got = parseChunks([Buffer.concat([unknownError, none])], new Map(), { mode: 'structured' });
    expect(got.map((g) => g.reply)).toMatchObject([{ kind: 'error', type: 0x8003, error: 22, message: 'no', errorOffset: undefined }, { kind: 'none' }]);
  });

  it('rejects chunks that contradict the spec', () => {
    const head = (type: number, len: number, flags = 0): Wire => wire().u32(0x668e33ef).u16(flags).u16(type).u64(1n).u32(len);
    type Wire = ReturnType<typeof wire>;
    const cases: [Buffer, string, ReplyMode?][] = [
      [head(7, 0).build(), 'unknown-chunk'],
      [head(0, 0).build(), 'invalid-message'], // NONE without DONE
      [head(0, 4, 1).u32(0).build(), 'invalid-message'], // NONE with payload
      [head(1, 8).u64(0n).build(), 'invalid-message'], // OFFSET_DATA without data
      [head(2, 12).u64(0n).u32(0).build(), 'invalid-message'], // zero-length hole
      [head(2, 8).u64(0n).build(), 'invalid-message'],
      [head(5, 8).u32(1).u32(0).build(), 'invalid-message'], // no descriptor
      [head(5, 12).u32(1).u32(0).u32(0).build(), 'invalid-message'], // zero-length extent
      [head(6, 24).u32(1).u32(1).u64(1n).u64(0n).build(), 'unknown-chunk'], // BLOCK_STATUS_EXT needs extended headers
      [head(0x8001, 6).u32(0).u16(0).build(), 'invalid-message'], // error value 0
      [head(0x8001, 6).u32(5).u16(3).build(), 'invalid-message'], // message past the end
      [head(0x8002, 14).u32(5).u16(1).u64(0n).build(), 'invalid-message'], // message runs into the offset
      [head(0x8001, 5).u32(5).u8(0).build(), 'invalid-message'],
      // A 16-bit message length bounds error chunks: longer ones fail at the header, unbuffered.
      [head(0x8001, 6 + 0x10000).build(), 'invalid-message'],
      [head(0x8002, 14 + 0x10000).build(), 'invalid-message'],
      [wire().u32(0x6e8a278c).u16(0).u16(6).u64(1n).u64(0n).u64(40n).u32(1).u32(3).u64(1n).u64(0n).u64(1n).u64(0n).build(), 'invalid-message', 'extended'], // count mismatch
      [wire().u32(0x668e33ef).u16(1).u16(0).u64(1n).u32(0).build(), 'bad-magic', 'simple'],
      [wire().u32(0x67446698).u32(0).u64(1n).zeros(16).build(), 'bad-magic', 'extended'],
      [wire().u32(0x6e8a278c).zeros(28).build(), 'bad-magic', 'structured'],
      [wire().u32(0x67446698).u32(0).u64(77n).build(), 'unknown-cookie'],
    ];
    for (const [bytes, reason, mode] of cases) {
      for (const parts of [[bytes], [...bytes].map((b) => Buffer.from([b]))]) {
        const err = thrown(() => parseChunks(parts, new Map(), { mode: mode ?? 'structured' }, false));
        expect(err).toBeInstanceOf(NbdProtocolError);
        expect((err as NbdProtocolError).reason, `${bytes.toString('hex')} (${mode})`).toBe(reason);
      }
    }
  });

  it('rejects hostile lengths before allocating them', () => {
    const cases: [Buffer, ReplyMode][] = [
      [wire().u32(0x668e33ef).u16(0).u16(5).u64(1n).u32(0xffffffff).build(), 'structured'],
      [wire().u32(0x668e33ef).u16(0).u16(1).u64(1n).u32(0xffffffff).build(), 'structured'],
      [wire().u32(0x6e8a278c).u16(0).u16(0x8001).u64(1n).u64(0n).u64(2n ** 64n - 1n).build(), 'extended'],
    ];
    for (const [bytes, mode] of cases) {
      const largest = largestAllocation(() => {
        expect(thrown(() => parseChunks([bytes], new Map(), { mode }, false))).toMatchObject({ reason: 'too-large' });
      });
      expect(largest).toBeLessThan(1024);
    }
    const simple = wire().u32(0x67446698).u32(0).u64(1n).build();
    expect(thrown(() => parseChunks([simple], new Map([[1n, 2 ** 30]]), { mode: 'simple' }, false))).toMatchObject({ reason: 'too-large' });
  });

  it('gathers a split metadata chunk into a buffer of exactly its size', () => {
    const s: Spec = { kind: 'status', cookie: 1n, reqOffset: 0, flags: 1, contextId: 2, wide: false, extents: Array.from({ length: 100 }, (_, i) => ({ length: 512 * (i + 1), flags: i & 3 })) };
    const bytes = build(s, 'structured');
    const parts = chunk(bytes, [30, 400]);
    const largest = largestAllocation(() => expect(parseChunks(parts, new Map(), { mode: 'structured' })).toEqual([expected(s, 'structured')]));
    expect(largest).toBe(bytes.length - 20);
  });

  it('lets the mode change only between replies', () => {
    const p = new ReplyParser({ simpleReplyLength: () => 0, onData: () => undefined, onReply: () => undefined });
    p.push(wire().u32(0x67446698).u32(0).build());
    expect(() => (p.mode = 'extended')).toThrow(BlockError);
    p.push(wire().u64(1n).build());
    p.mode = 'extended';
    expect(p.mode).toBe('extended');
  });

  it('abandons the stream when a handler throws', () => {
    const p = new ReplyParser({ simpleReplyLength: () => 0, onData: () => undefined, onReply: () => { throw new Error('boom'); } });
    expect(() => p.push(wire().u32(0x67446698).u32(0).u64(1n).build())).toThrow('boom');
    expect(thrown(() => p.push(Buffer.alloc(1)))).toMatchObject({ reason: 'closed' });
  });

  it('never throws anything but NbdProtocolError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), cutsArb, fc.constantFrom(...MODES), fc.nat(4), (bytes, cuts, mode, magic) => {
        const input = Buffer.from(bytes);
        const magics = [0x67446698, 0x668e33ef, 0x6e8a278c];
        if (magic < 3 && input.length >= 4) input.writeUInt32BE(magics[magic], 0);
        try {
          parseChunks(chunk(input, cuts), new Map(), { mode, maxPayload: 200, maxMetadataLength: 200 }, false);
        } catch (err) {
          if (!(err instanceof NbdProtocolError)) throw err;
        }
      }),
      { numRuns: 300 },
    );
  });
});
