import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  NbdProtocolError,
  OptionParser,
  decodeOption,
  encodeClientFlags,
  encodeExportNameOption,
  encodeInfoOption,
  encodeMetaContextOption,
  encodeOption,
  type NbdOption,
  type OptionParserEvent,
  type OptionParserOptions,
} from '../../../src/nbd/protocol/index.js';
import { chunk, cutsArb, largestAllocation, nbdStringArb, splits, thrown, utf8Length, wire } from './wire.js';

const option = (code: number, data: Buffer = Buffer.alloc(0)): Buffer => wire().ascii('IHAVEOPT').u32(code).u32(data.length).bytes(data).build();

function parseChunks(chunks: readonly Buffer[], options?: OptionParserOptions): OptionParserEvent[] {
  const p = new OptionParser(options);
  const out: OptionParserEvent[] = [];
  for (const c of chunks) {
    p.push(c);
    for (let e = p.next(); e; e = p.next()) out.push(e);
  }
  return out;
}

const opt = (o: NbdOption): OptionParserEvent => ({ kind: 'option', option: o });

// A session written from the spec: client flags, then options of every shape.
const goData = wire().u32(4).ascii('disk').u16(2).u16(3).u16(1).build();
const metaData = wire().u32(4).ascii('disk').u32(2).u32(15).ascii('base:allocation').u32(5).ascii('qemu:').build();
const session = Buffer.concat([
  wire().u32(3).build(),
  option(8),
  option(10, metaData),
  option(99, Buffer.from('whatever')),
  option(3, Buffer.from('x')),
  option(7, goData),
  option(1, Buffer.from('disk')),
]);
const sessionEvents: OptionParserEvent[] = [
  { kind: 'clientFlags', flags: 3 },
  opt({ kind: 'structuredReply', code: 8 }),
  opt({ kind: 'setMetaContext', code: 10, exportName: 'disk', queries: ['base:allocation', 'qemu:'] }),
  opt({ kind: 'unknown', code: 99, length: 8 }),
  opt({ kind: 'invalid', code: 3, reason: 'option takes no data' }),
  opt({ kind: 'go', code: 7, name: 'disk', infoRequests: [3, 1] }),
  opt({ kind: 'exportName', code: 1, name: 'disk' }),
];

describe('OptionParser', () => {
  it('parses a hand-built session', () => {
    expect(parseChunks([session])).toEqual(sessionEvents);
  });

  it('parses the same session at every split position and byte by byte', () => {
    for (const parts of splits(session)) expect(parseChunks(parts)).toEqual(sessionEvents);
  });

  it('after STARTTLS starts at the first option header, with no client flags', () => {
    // session = client flags (4 bytes) + options: the same options parse without the flags.
    const events = parseChunks([session.subarray(4)], { afterStartTls: true });
    expect(events).toEqual(sessionEvents.slice(1));
    // Four bytes that would have been flags are an option header's start instead: bad magic.
    const p = new OptionParser({ afterStartTls: true });
    p.push(Buffer.alloc(16));
    expect(() => p.next()).toThrow(NbdProtocolError);
  });

  it('returns nothing until a message is complete, and pulls one message per next()', () => {
    const p = new OptionParser();
    p.push(session.subarray(0, 3));
    expect(p.next()).toBeUndefined();
    p.push(session.subarray(3));
    expect(p.next()).toEqual(sessionEvents[0]);
    expect(p.next()).toEqual(sessionEvents[1]);
    expect(p.buffered).toBe(session.length - 4 - 16);
  });

  it('round-trips every option the client serializers produce, under random chunking', () => {
    const entry = fc.oneof(
      nbdStringArb.map((name) => ({ bytes: encodeExportNameOption(name), want: { kind: 'exportName', code: 1, name } as NbdOption })),
      fc.constantFrom([2, 'abort'], [3, 'list'], [5, 'startTls'], [8, 'structuredReply'], [11, 'extendedHeaders']).map(([code, kind]) => ({
        bytes: encodeOption(code as number),
        want: { kind, code } as NbdOption,
      })),
      fc
        .record({ go: fc.boolean(), name: nbdStringArb, reqs: fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 6 }) })
        .map(({ go, name, reqs }) => ({
          bytes: encodeInfoOption(go ? 7 : 6, name, reqs),
          want: { kind: go ? 'go' : 'info', code: go ? 7 : 6, name, infoRequests: reqs } as NbdOption,
        })),
      fc
        .record({ set: fc.boolean(), name: nbdStringArb, queries: fc.array(nbdStringArb, { maxLength: 4 }) })
        .map(({ set, name, queries }) => ({
          bytes: encodeMetaContextOption(set ? 10 : 9, name, queries),
          want: { kind: set ? 'setMetaContext' : 'listMetaContext', code: set ? 10 : 9, exportName: name, queries } as NbdOption,
        })),
      fc
        .record({ code: fc.oneof(fc.constant(4), fc.integer({ min: 12, max: 0xffffffff })), data: fc.uint8Array({ maxLength: 64 }) })
        .map(({ code, data }) => ({ bytes: encodeOption(code, data), want: { kind: 'unknown', code, length: data.length } as NbdOption })),
    );
    fc.assert(
      fc.property(fc.nat(), fc.array(entry, { maxLength: 8 }), cutsArb, (flags, entries, cuts) => {
        const stream = Buffer.concat([encodeClientFlags(flags >>> 0), ...entries.map((e) => e.bytes)]);
        expect(parseChunks(chunk(stream, cuts))).toEqual([{ kind: 'clientFlags', flags: flags >>> 0 }, ...entries.map((e) => opt(e.want))]);
      }),
      { numRuns: 200 },
    );
  });

  it('fails on a bad option magic and stays failed', () => {
    const p = new OptionParser();
    p.push(Buffer.concat([wire().u32(1).build(), wire().ascii('IHAVEOPX').u32(1).u32(0).build()]));
    expect(p.next()).toEqual({ kind: 'clientFlags', flags: 1 });
    const err = thrown(() => p.next());
    expect(err).toBeInstanceOf(NbdProtocolError);
    expect(err).toMatchObject({ reason: 'bad-magic', code: 'EIO' });
    expect(() => p.push(option(3))).toThrow(err as Error);
    expect(() => p.next()).toThrow(err as Error);
  });

  it('rejects a 0xffffffff option length without allocating it', () => {
    const p = new OptionParser();
    const largest = largestAllocation(() => {
      p.push(Buffer.concat([wire().u32(1).build(), wire().ascii('IHAVEOPT').u32(1).u32(0xffffffff).build(), Buffer.alloc(100)]));
      p.next();
      expect(thrown(() => p.next())).toMatchObject({ reason: 'too-large' });
    });
    expect(largest).toBeLessThan(64 * 1024);
  });

  it('skips an oversized option as it arrives, reports tooBig, and goes on', () => {
    const p = new OptionParser({ maxOptionLength: 100, maxSkipLength: 10_000 });
    p.push(wire().u32(1).build());
    p.next();
    p.push(wire().ascii('IHAVEOPT').u32(6).u32(5000).build());
    expect(p.next()).toBeUndefined();
    for (let i = 0; i < 10; i++) {
      p.push(Buffer.alloc(500, 7));
      expect(p.buffered).toBe(0);
    }
    p.push(option(3));
    expect(p.next()).toEqual(opt({ kind: 'tooBig', code: 6, length: 5000 }));
    expect(p.next()).toEqual(opt({ kind: 'list', code: 3 }));
  });

  it('reports an oversized option of an unknown code as unknown, not tooBig (the server answers ERR_UNSUP)', () => {
    const p = new OptionParser({ maxOptionLength: 100, maxSkipLength: 10_000 });
    p.push(wire().u32(1).build());
    p.next();
    for (const code of [99, 0, 0x7fffffff]) {
      p.push(wire().ascii('IHAVEOPT').u32(code).u32(5000).build());
      p.push(Buffer.alloc(5000, 7));
      expect(p.next()).toEqual(opt({ kind: 'unknown', code, length: 5000 }));
    }
    p.push(option(3));
    expect(p.next()).toEqual(opt({ kind: 'list', code: 3 }));
  });

  it('cuts off a client that keeps sending while the server is busy', () => {
    const p = new OptionParser({ maxOptionLength: 100, maxBuffered: 1000 });
    p.push(Buffer.alloc(1000));
    expect(thrown(() => p.push(Buffer.alloc(1)))).toMatchObject({ reason: 'unexpected-data' });
  });

  it('hands the bytes after the last message to the next stage', () => {
    const tail = Buffer.from('request bytes follow');
    const p = new OptionParser();
    p.push(Buffer.concat([wire().u32(1).build(), option(1, Buffer.from('a')), tail]));
    expect(p.next()).toMatchObject({ kind: 'clientFlags' });
    expect(p.next()).toEqual(opt({ kind: 'exportName', code: 1, name: 'a' }));
    expect(p.takeRemainder()).toEqual(tail);
    expect(thrown(() => p.next())).toMatchObject({ reason: 'closed' });
  });

  it('never throws anything but NbdProtocolError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), cutsArb, (bytes, cuts) => {
        try {
          parseChunks(chunk(Buffer.from(bytes), cuts), { maxOptionLength: 64, maxSkipLength: 128 });
        } catch (err) {
          expect(err).toBeInstanceOf(NbdProtocolError);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('decodeOption', () => {
  it('reports malformed INFO/GO and meta-context data as invalid', () => {
    expect(decodeOption(7, Buffer.alloc(5))).toMatchObject({ kind: 'invalid', code: 7 });
    expect(decodeOption(7, wire().u32(10).ascii('ab').u16(0).build())).toMatchObject({ kind: 'invalid' });
    expect(decodeOption(6, wire().u32(2).ascii('ab').u16(2).u16(0).build())).toMatchObject({ kind: 'invalid' });
    expect(decodeOption(6, wire().u32(1).u8(0).u16(0).build())).toMatchObject({ kind: 'invalid', reason: expect.stringContaining('NBD string') });
    expect(decodeOption(1, Buffer.from([0xff, 0xfe]))).toMatchObject({ kind: 'invalid', code: 1 });
    expect(decodeOption(1, Buffer.alloc(4097, 0x61))).toMatchObject({ kind: 'invalid', code: 1 });
    expect(decodeOption(9, wire().u32(0).u32(0xffffffff).build())).toMatchObject({ kind: 'invalid' });
    expect(decodeOption(9, wire().u32(0).u32(1).u32(3).ascii('ab').build())).toMatchObject({ kind: 'invalid' });
    expect(decodeOption(10, wire().u32(0).u32(0).u8(1).build())).toMatchObject({ kind: 'invalid' });
    expect(decodeOption(11, Buffer.from([1]))).toMatchObject({ kind: 'invalid', code: 11 });
  });

  it('ignores data sent with ABORT, as the spec asks', () => {
    expect(decodeOption(2, Buffer.from('junk'))).toEqual({ kind: 'abort', code: 2 });
  });

  it('accepts exactly the INFO/GO payloads the serializer would produce', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.boolean(), (bytes, go) => {
        const data = Buffer.from(bytes);
        const code = go ? 7 : 6;
        const o = decodeOption(code, data);
        if (o.kind === 'invalid') return;
        if (o.kind !== 'info' && o.kind !== 'go') throw new Error(`unexpected ${o.kind}`);
        // Whatever decodes must re-encode to the very same bytes.
        expect(encodeInfoOption(code, o.name, o.infoRequests).subarray(16)).toEqual(data);
      }),
      { numRuns: 300 },
    );
  });

  it('accepts exactly the meta-context payloads the serializer would produce', () => {
    const structured = fc
      .record({ name: fc.string({ maxLength: 6 }), queries: fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }) })
      .map(({ name, queries }) => {
        const w = wire().u32(utf8Length(name)).utf8(name).u32(queries.length);
        for (const q of queries) w.u32(utf8Length(q)).utf8(q);
        return w.build();
      });
    const mutated = fc.tuple(structured, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([b, i, v]) => {
      const c = Buffer.from(b);
      if (c.length > 0) c[i % c.length] = v;
      return c;
    });
    fc.assert(
      fc.property(fc.oneof(structured, mutated, fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b))), (data) => {
        const o = decodeOption(9, data);
        if (o.kind === 'invalid') return;
        if (o.kind !== 'listMetaContext') throw new Error(`unexpected ${o.kind}`);
        expect(encodeMetaContextOption(9, o.exportName, o.queries).subarray(16)).toEqual(data);
      }),
      { numRuns: 300 },
    );
  });
});
