/**
 * The zero-copy read path, off the network: a reply stream cut into socket reads of random sizes,
 * each read landing where ReadPlacement says (the caller's target while a payload streams in, the
 * scratch buffer otherwise), parsed by the protocol's ReplyParser. The target must end up exact,
 * and for large payloads nearly every byte must have arrived in place, uncopied.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Cmd, ReplyFlag, ReplyParser, encodeOffsetDataHeader, encodeSimpleReply, type ReplyMode } from '../../../src/nbd/protocol/index.js';
import { NbdRequest } from '../../../src/nbd/client/request.js';
import { ReadCoverage } from '../../../src/nbd/client/read-coverage.js';
import { ReadPlacement } from '../../../src/nbd/client/read-placement.js';
import { expectSameBytes, patternBytes } from '../../helpers/bytes.js';

const SCRATCH = 64 * 1024;

/** Feeds `stream` through placement + parser in reads of the given sizes; returns bytes read in place. */
function receive(stream: Buffer, mode: ReplyMode, req: NbdRequest, readSizes: number[]): { direct: number; done: boolean } {
  const placement = new ReadPlacement();
  const scratch = Buffer.alloc(SCRATCH);
  let done = false;
  const parser = new ReplyParser(
    {
      simpleReplyLength: () => req.length,
      onData: (reply, at, data) => void placement.place(reply, at, data, () => req),
      onReply: (reply) => {
        placement.reset();
        if (reply.done) done = true;
      },
    },
    { mode },
  );
  let pos = 0;
  let direct = 0;
  for (let i = 0; pos < stream.length; i++) {
    const buf = placement.nextBuffer(scratch);
    const k = Math.min(readSizes[i % readSizes.length], buf.length, stream.length - pos);
    buf.set(stream.subarray(pos, pos + k));
    pos += k;
    if (buf !== scratch) direct += k;
    placement.consumed();
    parser.push(Buffer.from(buf.buffer, buf.byteOffset, k));
  }
  return { direct, done };
}

function readRequest(offset: number, length: number, structured: boolean): NbdRequest {
  const req = new NbdRequest(0, Cmd.READ, 0, offset, length, undefined, new Uint8Array(length).fill(0xee), { resolve: () => {}, reject: () => {} });
  if (structured) req.coverage = new ReadCoverage(offset, length);
  return req;
}

describe('ReadPlacement with the reply parser', () => {
  it('any partition into OFFSET_DATA chunks, cut into any socket reads, lands exactly', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300_000 }),
        fc.uniqueArray(fc.integer({ min: 1, max: 299_999 }), { maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 100_000 }), { minLength: 1, maxLength: 8 }),
        fc.nat(2 ** 40),
        (length, cuts, readSizes, offset) => {
          const data = patternBytes(length, length);
          const points = [0, ...cuts.filter((c) => c < length).sort((a, b) => a - b), length];
          const ref = { cookieHi: 0, cookieLo: 7, offset };
          const parts: Buffer[] = [];
          points.slice(1).forEach((end, i) => {
            const flags = end === length ? ReplyFlag.DONE : 0;
            parts.push(encodeOffsetDataHeader(false, ref, flags, offset + points[i], end - points[i]), Buffer.from(data.subarray(points[i], end)));
          });
          const req = readRequest(offset, length, true);
          const { done } = receive(Buffer.concat(parts), 'structured', req, readSizes);
          expect(done).toBe(true);
          expect(req.coverage!.complete).toBe(true);
          expectSameBytes(req.target!, data);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a simple reply payload lands exactly too', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300_000 }), fc.array(fc.integer({ min: 1, max: 100_000 }), { minLength: 1, maxLength: 8 }), (length, readSizes) => {
        const data = patternBytes(length, 3);
        const req = readRequest(0, length, false);
        const stream = Buffer.concat([encodeSimpleReply({ cookieHi: 0, cookieLo: 1, offset: 0 }, 0), Buffer.from(data)]);
        expect(receive(stream, 'simple', req, readSizes).done).toBe(true);
        expectSameBytes(req.target!, data);
      }),
      { numRuns: 100 },
    );
  });

  it('large payloads are read in place: only the first read and a short tail go through scratch', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1 << 20, max: 8 << 20 }), fc.integer({ min: 4096, max: SCRATCH }), (length, readSize) => {
        const data = patternBytes(length, 5);
        const ref = { cookieHi: 0, cookieLo: 1, offset: 0 };
        const stream = Buffer.concat([encodeOffsetDataHeader(false, ref, ReplyFlag.DONE, 0, length), Buffer.from(data)]);
        const req = readRequest(0, length, true);
        const { direct } = receive(stream, 'structured', req, [readSize]);
        expectSameBytes(req.target!, data);
        // The tail below 32 KiB is left to the scratch buffer, where it shares a read with what follows.
        expect(direct).toBeGreaterThanOrEqual(length - readSize - 32 * 1024);
      }),
      { numRuns: 20 },
    );
  });
});
