import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockError } from '../../../src/errors.js';
import {
  NbdProtocolError,
  RequestParser,
  decodeBlockStatusFilter,
  encodeBlockStatusFilter,
  encodeRequestHeader,
  type NbdRequest,
  type RequestParserOptions,
} from '../../../src/nbd/protocol/index.js';
import { chunk, cookieArb, cutsArb, halves, largestAllocation, splits, thrown, u64Arb, wire } from './wire.js';

/** A request as the spec lays it out, with exact 64-bit fields. */
interface WireRequest {
  type: number;
  flags: number;
  cookie: bigint;
  offset: bigint;
  length: bigint;
  payload?: Buffer;
  /** Bytes that follow the header but are no payload the parser may deliver (an extended WRITE without PAYLOAD_LEN). */
  skipped?: Buffer;
}

function build(req: WireRequest, extended: boolean): Buffer {
  const w = wire().u32(extended ? 0x21e41c71 : 0x25609513).u16(req.flags).u16(req.type).u64(req.cookie).u64(req.offset);
  if (extended) w.u64(req.length);
  else w.u32(Number(req.length));
  if (req.payload) w.bytes(req.payload);
  else if (req.skipped) w.bytes(req.skipped);
  return w.build();
}

/** What the parser must make of `req` (payload presence decided by the sender's framing). */
function expected(req: WireRequest): NbdRequest {
  const writeWithoutPayload = req.type === 1 && !req.payload;
  return {
    type: req.type,
    flags: req.flags,
    ...halves(req.cookie),
    offset: Number(req.offset),
    offsetHi: Number(req.offset >> 32n),
    offsetLo: Number(req.offset & 0xffffffffn),
    length: Number(req.length),
    payload: req.payload,
    error: writeWithoutPayload ? 'EINVAL' : undefined,
    errorMessage: writeWithoutPayload ? expect.any(String) : undefined,
  } as NbdRequest;
}

function parseChunks(chunks: readonly Buffer[], options?: RequestParserOptions, complete = true): NbdRequest[] {
  const out: NbdRequest[] = [];
  const p = new RequestParser((r) => out.push(r), options);
  for (const c of chunks) p.push(c);
  if (complete) expect(p.idle).toBe(true);
  return out;
}

const payloadArb = fc.uint8Array({ maxLength: 700 }).map((b) => Buffer.from(b));

/** Requests framed as a compact-header client would send them. */
const compactArb: fc.Arbitrary<WireRequest> = fc
  .record({
    type: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 0xffff })),
    flags: fc.integer({ min: 0, max: 0xffff }),
    cookie: cookieArb,
    offset: u64Arb,
    length: fc.bigInt({ min: 0n, max: 2n ** 32n - 1n }),
    payload: payloadArb,
  })
  .map((r) => (r.type === 1 ? { ...r, length: BigInt(r.payload.length) } : { ...r, payload: undefined }));

/**
 * Requests framed as an extended-header client would send them: a payload iff PAYLOAD_LEN, except
 * that a WRITE carries its data even without the flag (a noncompliant client): it must be skipped.
 */
const extendedArb: fc.Arbitrary<WireRequest> = fc
  .record({
    type: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 0xffff })),
    flags: fc.integer({ min: 0, max: 0xffff }),
    cookie: cookieArb,
    offset: u64Arb,
    length: u64Arb,
    payload: payloadArb,
  })
  .map((r) =>
    (r.flags & 0x20) !== 0
      ? { ...r, length: BigInt(r.payload.length) }
      : r.type === 1
        ? { ...r, length: BigInt(r.payload.length), payload: undefined, skipped: r.payload }
        : { ...r, payload: undefined },
  );

describe('RequestParser', () => {
  it('parses hand-built compact requests: READ, WRITE with payload, FLUSH, DISC', () => {
    const reqs: WireRequest[] = [
      { type: 0, flags: 0, cookie: 1n, offset: 4096n, length: 512n },
      { type: 1, flags: 1, cookie: 0xfeedfacecafebeefn, offset: 0n, length: 5n, payload: Buffer.from('hello') },
      { type: 3, flags: 0, cookie: 3n, offset: 0n, length: 0n },
      { type: 2, flags: 0, cookie: 4n, offset: 0n, length: 0n },
    ];
    const stream = Buffer.concat(reqs.map((r) => build(r, false)));
    expect(stream.length).toBe(4 * 28 + 5);
    const want = reqs.map(expected);
    expect(parseChunks([stream])).toEqual(want);
    for (const parts of splits(stream)) expect(parseChunks(parts)).toEqual(want);
  });

  it('parses hand-built extended requests at every split position', () => {
    const reqs: WireRequest[] = [
      { type: 1, flags: 0x21, cookie: 7n, offset: 2n ** 40n, length: 3n, payload: Buffer.from('abc') },
      { type: 6, flags: 0, cookie: 8n, offset: 0n, length: 2n ** 45n }, // 64-bit effect length
      { type: 7, flags: 0x20, cookie: 9n, offset: 0n, length: 12n, payload: encodeBlockStatusFilter({ effectLength: 2 ** 33, contextIds: [5] }) },
    ];
    const stream = Buffer.concat(reqs.map((r) => build(r, true)));
    const want = reqs.map(expected);
    for (const parts of splits(stream)) expect(parseChunks(parts, { extended: true })).toEqual(want);
    expect(decodeBlockStatusFilter(want[2].payload!)).toEqual({ effectLength: 2 ** 33, contextIds: [5] });
  });

  it('parses any stream of hand-built requests under random chunking (both header styles)', () => {
    for (const extended of [false, true]) {
      fc.assert(
        fc.property(fc.array(extended ? extendedArb : compactArb, { maxLength: 8 }), cutsArb, (reqs, cuts) => {
          const stream = Buffer.concat(reqs.map((r) => build(r, extended)));
          expect(parseChunks(chunk(stream, cuts), { extended })).toEqual(reqs.map(expected));
        }),
        { numRuns: 150 },
      );
    }
  });

  it('round-trips the client serializer: encodeRequestHeader + payload → the same request', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.array(fc.oneof(compactArb, extendedArb), { maxLength: 6 }), cutsArb, (extended, raw, cuts) => {
        const reqs = raw
          .filter((r) => r.offset < 2n ** 63n && r.length < 2n ** 32n)
          .map((r) => ({ ...r, flags: r.payload ? r.flags | (extended ? 0x20 : 0) : r.flags & ~0x20, type: r.payload ? 1 : r.type === 1 ? 0 : r.type }));
        const stream = Buffer.concat(
          reqs.flatMap((r) => {
            const { cookieHi, cookieLo } = halves(r.cookie);
            const head = encodeRequestHeader(extended, r.type, r.flags, cookieHi, cookieLo, Number(r.offset), Number(r.length));
            return r.payload ? [head, r.payload] : [head];
          }),
        );
        const got = parseChunks(chunk(stream, cuts), { extended });
        // The serializer takes a double: what goes on the wire is the offset rounded to one.
        const sent = (r: WireRequest): bigint => BigInt(Number(r.offset));
        expect(got).toEqual(reqs.map((r) => ({ ...expected(r), offset: Number(r.offset), offsetHi: Number(sent(r) >> 32n), offsetLo: Number(sent(r) & 0xffffffffn) })));
      }),
      { numRuns: 150 },
    );
  });

  it('hands out a payload inside one chunk as a view, without copying', () => {
    const stream = build({ type: 1, flags: 0, cookie: 1n, offset: 0n, length: 4096n, payload: Buffer.alloc(4096, 9) }, false);
    const [req] = parseChunks([stream]);
    expect(req.payload!.buffer).toBe(stream.buffer);
    expect(req.payload!.byteOffset).toBe(stream.byteOffset + 28);
  });

  it('gathers a payload spanning chunks into one buffer from allocatePayload', () => {
    const payload = Buffer.from(Array.from({ length: 1000 }, (_, i) => i & 0xff));
    const stream = build({ type: 1, flags: 0, cookie: 1n, offset: 0n, length: 1000n, payload }, false);
    const sizes: number[] = [];
    const pool = Buffer.alloc(4096);
    const [req] = parseChunks(chunk(stream, [10, 300, 301, 700]), {
      allocatePayload: (n) => {
        sizes.push(n);
        return pool;
      },
    });
    expect(sizes).toEqual([1000]);
    expect(req.payload).toEqual(payload);
    expect(req.payload!.buffer).toBe(pool.buffer);
  });

  it('reports 64-bit offsets and lengths of 2^53 and more as values a bounds check rejects', () => {
    fc.assert(
      fc.property(u64Arb, u64Arb, (offset, length) => {
        const [req] = parseChunks([build({ type: 4, flags: 0, cookie: 0n, offset, length }, true)], { extended: true });
        expect(req.offset).toBe(Number(offset));
        // The raw halves are exact at any size: replies echo them.
        expect((BigInt(req.offsetHi) << 32n) | BigInt(req.offsetLo)).toBe(offset);
        expect(req.length).toBe(Number(length));
        // Never wrapped: a value of 2^53 or more stays at least 2^53.
        if (offset >= 2n ** 53n) expect(req.offset).toBeGreaterThanOrEqual(2 ** 53);
        else expect(Number.isSafeInteger(req.offset)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('skips a payload over maxPayload without allocating it, and answers it with EINVAL', () => {
    const big = build({ type: 1, flags: 0, cookie: 5n, offset: 0n, length: 5000n, payload: Buffer.alloc(5000, 1) }, false);
    const next = build({ type: 3, flags: 0, cookie: 6n, offset: 0n, length: 0n }, false);
    const parts = chunk(Buffer.concat([big, next]), [100, 2000, 4000]);
    let got: NbdRequest[] = [];
    const largest = largestAllocation(() => {
      got = parseChunks(parts, { maxPayload: 1024, maxDiscard: 10_000 });
    });
    expect(largest).toBeLessThan(1024);
    expect(got).toEqual([
      { type: 1, flags: 0, cookieHi: 0, cookieLo: 5, offset: 0, offsetHi: 0, offsetLo: 0, length: 5000, payload: undefined, error: 'EINVAL', errorMessage: expect.stringContaining('5000') },
      expected({ type: 3, flags: 0, cookie: 6n, offset: 0n, length: 0n }),
    ]);
  });

  it('fails at once on a 0xffffffff WRITE length, before any payload and without allocating', () => {
    const p = new RequestParser(() => undefined);
    const head = build({ type: 1, flags: 0, cookie: 1n, offset: 0n, length: 0xffffffffn }, false);
    const largest = largestAllocation(() => {
      expect(thrown(() => p.push(head))).toMatchObject({ reason: 'too-large', code: 'EIO' });
    });
    expect(largest).toBeLessThan(1024);
  });

  it('fails on an extended payload length of 2^60', () => {
    const p = new RequestParser(() => undefined, { extended: true });
    expect(thrown(() => p.push(build({ type: 1, flags: 0x20, cookie: 1n, offset: 0n, length: 2n ** 60n }, true)))).toMatchObject({ reason: 'too-large' });
  });

  it('fails on a bad magic (including the other header style) and stays failed', () => {
    for (const [bytes, extended] of [
      [build({ type: 0, flags: 0, cookie: 1n, offset: 0n, length: 1n }, true), false],
      [build({ type: 0, flags: 0, cookie: 1n, offset: 0n, length: 1n }, false), true],
      [Buffer.alloc(32), false],
    ] as const) {
      const got: NbdRequest[] = [];
      const p = new RequestParser((r) => got.push(r), { extended });
      const err = thrown(() => p.push(Buffer.from(bytes)));
      expect(err).toBeInstanceOf(NbdProtocolError);
      expect(err).toMatchObject({ reason: 'bad-magic' });
      expect(() => p.push(build({ type: 3, flags: 0, cookie: 1n, offset: 0n, length: 0n }, extended))).toThrow(err as Error);
      expect(got).toEqual([]);
    }
  });

  it('abandons the stream when the request handler throws', () => {
    const p = new RequestParser(() => {
      throw new Error('boom');
    });
    expect(() => p.push(build({ type: 3, flags: 0, cookie: 1n, offset: 0n, length: 0n }, false))).toThrow('boom');
    expect(thrown(() => p.push(Buffer.alloc(1)))).toMatchObject({ reason: 'closed' });
  });

  it('never throws anything but NbdProtocolError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), cutsArb, fc.boolean(), fc.boolean(), (bytes, cuts, extended, magic) => {
        const input = Buffer.from(bytes);
        if (magic && input.length >= 4) input.writeUInt32BE(extended ? 0x21e41c71 : 0x25609513, 0);
        try {
          parseChunks(chunk(input, cuts), { extended, maxPayload: 100, maxDiscard: 200 }, false);
        } catch (err) {
          if (!(err instanceof NbdProtocolError)) throw err;
        }
      }),
      { numRuns: 300 },
    );
  });

  it('switches header style only between requests (model-based)', () => {
    interface Model {
      extended: boolean;
      expected: NbdRequest[];
    }
    interface Real {
      parser: RequestParser;
      got: NbdRequest[];
    }
    class Send implements fc.Command<Model, Real> {
      constructor(
        readonly compact: WireRequest,
        readonly ext: WireRequest,
        readonly cuts: number[],
      ) {}
      check = (): boolean => true;
      run(m: Model, r: Real): void {
        const req = m.extended ? this.ext : this.compact;
        for (const c of chunk(build(req, m.extended), this.cuts)) r.parser.push(c);
        m.expected.push(expected(req));
        expect(r.got).toEqual(m.expected);
        expect(r.parser.idle).toBe(true);
      }
      toString = (): string => `send(${this.cuts})`;
    }
    class Switch implements fc.Command<Model, Real> {
      check = (): boolean => true;
      run(m: Model, r: Real): void {
        m.extended = !m.extended;
        r.parser.extended = m.extended;
        expect(r.parser.extended).toBe(m.extended);
      }
      toString = (): string => 'switch';
    }
    class SwitchMidRequest implements fc.Command<Model, Real> {
      constructor(readonly at: number) {}
      check = (): boolean => true;
      run(m: Model, r: Real): void {
        const req: WireRequest = { type: 1, flags: m.extended ? 0x20 : 0, cookie: 42n, offset: 0n, length: 4n, payload: Buffer.from('data') };
        const bytes = build(req, m.extended);
        const cut = 1 + (this.at % (bytes.length - 1));
        r.parser.push(bytes.subarray(0, cut));
        expect(r.parser.idle).toBe(false);
        expect(() => (r.parser.extended = !m.extended)).toThrow(BlockError);
        r.parser.push(bytes.subarray(cut));
        m.expected.push(expected(req));
        expect(r.got).toEqual(m.expected);
      }
      toString = (): string => `switchMid(${this.at})`;
    }
    const commands = fc.commands(
      [
        fc.tuple(compactArb, extendedArb, cutsArb).map(([c, e, cuts]) => new Send(c, e, cuts)),
        fc.constant(new Switch()),
        fc.nat().map((at) => new SwitchMidRequest(at)),
      ],
      { maxCommands: 30 },
    );
    fc.assert(
      fc.property(commands, (cmds) => {
        const got: NbdRequest[] = [];
        fc.modelRun(() => ({ model: { extended: false, expected: [] }, real: { parser: new RequestParser((r) => got.push(r)), got } }), cmds);
      }),
      { numRuns: 100 },
    );
  });
});

describe('block-status filter payload', () => {
  it('round-trips and rejects malformed payloads', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.uniqueArray(fc.nat(), { minLength: 1, maxLength: 8 }), (effectLength, ids) => {
        const bytes = encodeBlockStatusFilter({ effectLength, contextIds: ids });
        expect(bytes).toEqual(wire().u64(BigInt(effectLength)).bytes(Buffer.concat(ids.map((i) => wire().u32(i).build()))).build());
        expect(decodeBlockStatusFilter(bytes)).toEqual({ effectLength, contextIds: ids });
      }),
    );
    expect(decodeBlockStatusFilter(Buffer.alloc(8))).toBeUndefined();
    expect(decodeBlockStatusFilter(Buffer.alloc(14))).toBeUndefined();
    expect(decodeBlockStatusFilter(wire().u64(1n).u32(3).u32(3).build())).toBeUndefined();
  });
});
