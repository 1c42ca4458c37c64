import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BlockError,
} from '../../../src/errors.js';
import {
  NbdProtocolError,
  OptionReplyParser,
  encodeAck,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoDescription,
  encodeInfoExport,
  encodeInfoName,
  encodeMetaContextReply,
  encodeOptionError,
  encodeOptionReply,
  encodeServerReply,
  type OptionReply,
  type OptionReplyParserEvent,
} from '../../../src/nbd/protocol/index.js';
import { chunk, cutsArb, largestAllocation, nbdStringArb, splits, thrown, wire } from './wire.js';

const REPLY_MAGIC = 0x3e889045565a9n;
const reply = (option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer =>
  wire().u64(REPLY_MAGIC).u32(option).u32(type).u32(data.length).bytes(data).build();
const greeting = (flags: number): Buffer => wire().ascii('NBDMAGIC').ascii('IHAVEOPT').u16(flags).build();

function drain(p: OptionReplyParser): OptionReplyParserEvent[] {
  const out: OptionReplyParserEvent[] = [];
  for (let e = p.next(); e; e = p.next()) out.push(e);
  return out;
}

function parseChunks(chunks: readonly Buffer[]): OptionReplyParserEvent[] {
  const p = new OptionReplyParser();
  const out: OptionReplyParserEvent[] = [];
  for (const c of chunks) {
    p.push(c);
    out.push(...drain(p));
  }
  return out;
}

const r = (x: OptionReply): OptionReplyParserEvent => ({ kind: 'reply', reply: x });

// A server's side of a session, from the spec: LIST, then GO with several infos.
const session = Buffer.concat([
  greeting(3),
  reply(3, 2, wire().u32(4).ascii('disk').ascii('main disk').build()),
  reply(3, 1),
  reply(10, 4, wire().u32(7).ascii('base:allocation').build()),
  reply(7, 3, wire().u16(0).u64(2n ** 40n).u16(0x1ed).build()),
  reply(7, 3, wire().u16(3).u32(512).u32(4096).u32(2 ** 25).build()),
  reply(7, 3, wire().u16(1).ascii('disk').build()),
  reply(7, 3, wire().u16(2).ascii('desc').build()),
  reply(7, 3, wire().u16(77).ascii('??').build()),
  reply(6, 2 ** 31 + 6, Buffer.from('no such export')),
  reply(7, 99, Buffer.from('xy')),
  reply(7, 1),
]);
const sessionEvents: OptionReplyParserEvent[] = [
  { kind: 'greeting', handshakeFlags: 3 },
  r({ kind: 'server', option: 3, name: 'disk', description: 'main disk' }),
  r({ kind: 'ack', option: 3 }),
  r({ kind: 'metaContext', option: 10, contextId: 7, name: 'base:allocation' }),
  r({ kind: 'info', option: 7, info: { type: 'export', size: 2 ** 40, transmissionFlags: 0x1ed } }),
  r({ kind: 'info', option: 7, info: { type: 'blockSize', minimum: 512, preferred: 4096, maximum: 2 ** 25 } }),
  r({ kind: 'info', option: 7, info: { type: 'name', name: 'disk' } }),
  r({ kind: 'info', option: 7, info: { type: 'description', description: 'desc' } }),
  r({ kind: 'info', option: 7, info: { type: 'unknown', infoType: 77, data: Buffer.from('??') } }),
  r({ kind: 'error', option: 6, error: 2 ** 31 + 6, message: 'no such export' }),
  r({ kind: 'unknown', option: 7, replyType: 99, data: Buffer.from('xy') }),
  r({ kind: 'ack', option: 7 }),
];

describe('OptionReplyParser', () => {
  it('parses a hand-built session', () => {
    expect(parseChunks([session])).toEqual(sessionEvents);
  });

  it('parses it at every split position and byte by byte', () => {
    for (const parts of splits(session)) expect(parseChunks(parts)).toEqual(sessionEvents);
  });

  it('round-trips every reply the server serializers produce, under random chunking', () => {
    const size = fc.oneof(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.constant(0));
    const entry = fc.oneof(
      fc.nat().map((o) => ({ bytes: encodeAck(o), want: { kind: 'ack', option: o } as OptionReply })),
      fc.tuple(fc.nat(), nbdStringArb, nbdStringArb).map(([o, name, description]) => ({
        bytes: encodeServerReply(o, name, description),
        want: { kind: 'server', option: o, name, description } as OptionReply,
      })),
      fc.tuple(fc.nat(), size, fc.integer({ min: 0, max: 0xffff })).map(([o, s, f]) => ({
        bytes: encodeInfoExport(o, s, f),
        want: { kind: 'info', option: o, info: { type: 'export', size: s, transmissionFlags: f } } as OptionReply,
      })),
      fc.tuple(fc.nat(), nbdStringArb).map(([o, name]) => ({
        bytes: encodeInfoName(o, name),
        want: { kind: 'info', option: o, info: { type: 'name', name } } as OptionReply,
      })),
      fc.tuple(fc.nat(), nbdStringArb).map(([o, description]) => ({
        bytes: encodeInfoDescription(o, description),
        want: { kind: 'info', option: o, info: { type: 'description', description } } as OptionReply,
      })),
      fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.nat()).map(([o, a, b, c]) => ({
        bytes: encodeInfoBlockSize(o, a, b, c),
        want: { kind: 'info', option: o, info: { type: 'blockSize', minimum: a, preferred: b, maximum: c } } as OptionReply,
      })),
      fc.tuple(fc.nat(), fc.nat(), nbdStringArb).map(([o, id, name]) => ({
        bytes: encodeMetaContextReply(o, id, name),
        want: { kind: 'metaContext', option: o, contextId: id, name } as OptionReply,
      })),
      fc.tuple(fc.nat(), fc.integer({ min: 2 ** 31, max: 2 ** 32 - 1 }), nbdStringArb).map(([o, e, message]) => ({
        bytes: encodeOptionError(o, e, message),
        want: { kind: 'error', option: o, error: e, message } as OptionReply,
      })),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.array(entry, { maxLength: 8 }), cutsArb, (flags, entries, cuts) => {
        const stream = Buffer.concat([encodeGreeting(flags), ...entries.map((e) => e.bytes)]);
        expect(parseChunks(chunk(stream, cuts))).toEqual([{ kind: 'greeting', handshakeFlags: flags }, ...entries.map((e) => r(e.want))]);
      }),
      { numRuns: 200 },
    );
  });

  it('parses the export-name reply with and without the 124 zero bytes', () => {
    for (const noZeroes of [false, true]) {
      const body = wire().u64(123456789n).u16(0x43).zeros(noZeroes ? 0 : 124).build();
      expect(encodeExportNameReply(123456789, 0x43, noZeroes)).toEqual(body);
      const p = new OptionReplyParser();
      p.push(Buffer.concat([greeting(3), body.subarray(0, 5)]));
      expect(drain(p)).toEqual([{ kind: 'greeting', handshakeFlags: 3 }]);
      p.expectExportNameReply(noZeroes);
      p.push(body.subarray(5));
      p.push(Buffer.from('tail'));
      expect(drain(p)).toEqual([{ kind: 'exportName', size: 123456789, transmissionFlags: 0x43 }]);
      expect(p.takeRemainder()).toEqual(Buffer.from('tail'));
    }
  });

  it('refuses to expect an export-name reply in the middle of a message', () => {
    const p = new OptionReplyParser();
    expect(() => p.expectExportNameReply(true)).toThrow(BlockError);
  });

  it('rejects oldstyle servers and bad magics', () => {
    const old = wire().ascii('NBDMAGIC').u64(0x00420281861253n).u64(0).u32(0).build();
    const p = new OptionReplyParser();
    p.push(old);
    expect(thrown(() => p.next())).toMatchObject({ reason: 'oldstyle' });
    expect(thrown(() => parseChunks([wire().ascii('NBDMAGIX').ascii('IHAVEOPT').u16(1).build()]))).toMatchObject({ reason: 'bad-magic' });
    expect(thrown(() => parseChunks([greeting(1), wire().u64(1n).u32(1).u32(1).u32(0).build()]))).toMatchObject({ reason: 'bad-magic' });
  });

  it('rejects malformed replies a client cannot act on', () => {
    const bad = [
      reply(7, 3, wire().u16(0).u64(1n).build()), // NBD_INFO_EXPORT must be 12 bytes
      reply(7, 3, wire().u16(3).u32(1).build()), // BLOCK_SIZE must be 14
      reply(7, 3, Buffer.from([0])), // INFO shorter than its type
      reply(3, 2, wire().u32(9).ascii('abc').build()), // name past the end
      reply(10, 4, Buffer.from([1, 2])), // META_CONTEXT without an id
      reply(3, 1, Buffer.from([1])), // ACK with data
    ];
    for (const b of bad) {
      const err = thrown(() => parseChunks([greeting(1), b]));
      expect(err).toBeInstanceOf(NbdProtocolError);
      expect(err).toMatchObject({ reason: 'invalid-message' });
    }
  });

  it('rejects a 0xffffffff reply length without allocating it', () => {
    const largest = largestAllocation(() => {
      expect(thrown(() => parseChunks([greeting(1), wire().u64(REPLY_MAGIC).u32(1).u32(2).u32(0xffffffff).build()]))).toMatchObject({
        reason: 'too-large',
      });
    });
    expect(largest).toBeLessThan(64 * 1024);
  });

  it('encodes the generic reply exactly as the spec lays it out', () => {
    expect(encodeOptionReply(5, 2 ** 31 + 1, Buffer.from('no'))).toEqual(reply(5, 2 ** 31 + 1, Buffer.from('no')));
  });

  it('never throws anything but NbdProtocolError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), cutsArb, fc.boolean(), (bytes, cuts, valid) => {
        const input = valid ? Buffer.concat([greeting(1), Buffer.from(bytes)]) : Buffer.from(bytes);
        try {
          parseChunks(chunk(input, cuts));
        } catch (err) {
          expect(err).toBeInstanceOf(NbdProtocolError);
        }
      }),
      { numRuns: 300 },
    );
  });
});
