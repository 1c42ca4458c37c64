/**
 * How the client reads replies: structured READ chunks in any order land in the caller's buffer
 * (holes as zeros), and any reply that breaks the rules — a chunk outside the request, overlapping
 * chunks, DONE before every byte is covered, an unknown cookie, a simple reply to a structured
 * READ — fails the request with EIO and drops the connection. Error values map to BlockError codes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { codeFromNbdError } from '../../../src/errors.js';
import {
  Cmd,
  ReplyFlag,
  encodeErrorChunk,
  encodeHoleChunk,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeSimpleReply,
  type NbdRequest as WireRequest,
} from '../../../src/nbd/protocol/index.js';
import { expectSameBytes, patternBytes } from '../../helpers/bytes.js';
import { startScriptedServer, type ScriptedConnection, type ScriptedServer } from './scripted-server.js';

type Piece = { offset: number; length: number; hole: boolean };
type Script = (req: WireRequest, conn: ScriptedConnection) => boolean | void;

let script: Script | undefined;
let structured: ScriptedServer;
let simple: ScriptedServer;

beforeAll(async () => {
  const onRequest: Script = (req, conn) => script?.(req, conn);
  structured = await startScriptedServer({ structured: true, onRequest });
  simple = await startScriptedServer({ onRequest });
  structured.disk.set(patternBytes(structured.disk.length, 1));
});
afterAll(async () => {
  await structured.close();
  await simple.close();
});

/** Runs `fn` with a fresh client that does not reconnect (a violation leaves it disconnected). */
async function withClient<T>(server: ScriptedServer, fn: (c: NbdClient) => Promise<T>): Promise<T> {
  const c = await NbdClient.connect(server.uri, { reconnect: false });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

function sendPieces(req: WireRequest, conn: ScriptedConnection, pieces: readonly Piece[], noneLast: boolean): void {
  pieces.forEach((p, i) => {
    const flags = !noneLast && i === pieces.length - 1 ? ReplyFlag.DONE : 0;
    if (p.hole) conn.send(encodeHoleChunk(false, req, flags, p.offset, p.length));
    else conn.send(encodeOffsetDataHeader(false, req, flags, p.offset, p.length), conn.disk.subarray(p.offset, p.offset + p.length));
  });
  if (noneLast || pieces.length === 0) conn.send(encodeNoneChunk(false, req));
}

/** A read request and its exact partition into data and hole chunks, shuffled. */
const partitionedRead = fc
  .record({
    offset: fc.nat(1024 * 1024 - 9000),
    length: fc.integer({ min: 1, max: 9000 }),
    cuts: fc.uniqueArray(fc.integer({ min: 1, max: 8999 }), { maxLength: 8 }),
    holes: fc.array(fc.boolean(), { minLength: 9, maxLength: 9 }),
    noneLast: fc.boolean(),
  })
  .chain(({ offset, length, cuts, holes, noneLast }) => {
    const points = [0, ...cuts.filter((c) => c < length).sort((a, b) => a - b), length];
    const pieces = points.slice(1).map((end, i) => ({ offset: offset + points[i], length: end - points[i], hole: holes[i] }));
    return fc.record({
      offset: fc.constant(offset),
      length: fc.constant(length),
      noneLast: fc.constant(noneLast),
      pieces: fc.shuffledSubarray(pieces, { minLength: pieces.length, maxLength: pieces.length }),
    });
  });

describe('structured READ replies', () => {
  it('any exact partition into data and hole chunks, in any order, reads back the data with holes as zeros', async () => {
    await withClient(structured, async (c) => {
      await fc.assert(
        fc.asyncProperty(partitionedRead, async ({ offset, length, pieces, noneLast }) => {
          script = (req, conn) => {
            if (req.type !== Cmd.READ) return false;
            sendPieces(req, conn, pieces, noneLast);
            return true;
          };
          const expected = structured.disk.slice(offset, offset + length);
          for (const p of pieces) if (p.hole) expected.fill(0, p.offset - offset, p.offset + p.length - offset);
          // A dirty target proves holes are written, not skipped.
          const target = new Uint8Array(length).fill(0xee);
          await c.readInto(offset, target);
          expectSameBytes(target, expected);
        }),
        { numRuns: 150 },
      );
    });
  });

  const broken = partitionedRead.chain((r) =>
    fc.record({
      read: fc.constant(r),
      fault: fc.constantFrom('drop', 'overlap', 'outside-after', 'outside-before', 'empty-none'),
      which: fc.nat(r.pieces.length - 1),
      shift: fc.integer({ min: 1, max: 64 }),
    }),
  );

  it('a chunk outside the request, overlapping chunks or missing bytes fail the read with EIO and drop the connection', async () => {
    await fc.assert(
      fc.asyncProperty(broken, async ({ read, fault, which, shift }) => {
        const pieces = [...read.pieces];
        const p = pieces[which];
        if (fault === 'drop') pieces.splice(which, 1);
        if (fault === 'overlap') pieces.push({ ...p, offset: p.offset + Math.min(shift, p.length) - 1, length: 1 });
        if (fault === 'outside-after') pieces.push({ offset: read.offset + read.length - 1, length: 1 + shift, hole: p.hole });
        if (fault === 'outside-before') {
          if (read.offset === 0) return;
          pieces.push({ offset: read.offset - Math.min(shift, read.offset), length: Math.min(shift, read.offset) + 1, hole: p.hole });
        }
        if (fault === 'empty-none') pieces.length = 0;
        script = (req, conn) => {
          if (req.type !== Cmd.READ) return false;
          sendPieces(req, conn, pieces, read.noneLast);
          return true;
        };
        await withClient(structured, async (c) => {
          let lost = 0;
          c.on('disconnected', () => lost++);
          const why = { drop: /DONE after/, 'empty-none': /DONE after 0 /, overlap: /overlaps/, 'outside-after': /outside/, 'outside-before': /outside/ }[fault];
          await expect(c.read(read.offset, read.length)).rejects.toMatchObject({ code: 'EIO', message: expect.stringMatching(why) });
          expect(lost).toBe(1);
          expect(c.liveConnections).toBe(0);
          await expect(c.read(0, 1)).rejects.toMatchObject({ code: 'EIO', message: expect.stringMatching(/^NBD connection lost/) });
        });
      }),
      { numRuns: 100 },
    );
  });

  it('a simple reply to READ after structured replies were agreed is a violation', async () => {
    script = (req, conn) => {
      if (req.type !== Cmd.READ) return false;
      conn.send(encodeSimpleReply(req, 0), conn.disk.subarray(req.offset, req.offset + req.length));
      return true;
    };
    await withClient(structured, (c) => expect(c.read(0, 512)).rejects.toMatchObject({ code: 'EIO' }));
  });

  it('a reply to a cookie that is not in flight drops the connection; requests on it fail with EIO', async () => {
    script = (req, conn) => {
      if (req.type !== Cmd.READ) return false;
      conn.send(encodeNoneChunk(false, { ...req, cookieLo: req.cookieLo + 1000 }));
      return true;
    };
    await withClient(structured, (c) => expect(c.read(0, 512)).rejects.toMatchObject({ code: 'EIO' }));
  });

  it('an OFFSET_HOLE chunk whose payload is not exactly 12 bytes is a violation', async () => {
    script = (req, conn) => {
      if (req.type !== Cmd.READ) return false;
      const chunk = Buffer.from(encodeHoleChunk(false, req, ReplyFlag.DONE, req.offset, req.length));
      chunk.writeUInt32BE(16, 16); // payload length 16: the 12 the spec defines plus 4 stray bytes
      conn.send(chunk, new Uint8Array(4));
      return true;
    };
    await withClient(structured, (c) => expect(c.read(0, 512)).rejects.toMatchObject({ code: 'EIO' }));
  });

  it('an OFFSET_DATA chunk in the reply to a write is a violation', async () => {
    script = (req, conn) => {
      if (req.type !== Cmd.WRITE) return false;
      conn.send(encodeOffsetDataHeader(false, req, ReplyFlag.DONE, req.offset, 1), new Uint8Array(1));
      return true;
    };
    await withClient(structured, (c) => expect(c.write(0, new Uint8Array(4))).rejects.toMatchObject({ code: 'EIO' }));
  });
});

describe('error replies', () => {
  const errorValue = fc.oneof(fc.constantFrom(1, 5, 12, 22, 28, 75, 95), fc.integer({ min: 1, max: 0xffffffff }).filter((v) => v !== 108));

  it('an error chunk fails the request with the mapped code and the server message, and the connection survives', async () => {
    await withClient(structured, async (c) => {
      await fc.assert(
        fc.asyncProperty(errorValue, fc.constantFrom(Cmd.READ, Cmd.WRITE, Cmd.TRIM), fc.boolean(), async (value, cmd, withOffset) => {
          script = (req, conn) => {
            if (req.type !== cmd) return false;
            conn.send(encodeErrorChunk(false, req, ReplyFlag.DONE, value, 'scripted failure', withOffset ? req.offset : undefined));
            return true;
          };
          const op = cmd === Cmd.READ ? c.read(4096, 4096) : cmd === Cmd.WRITE ? c.write(4096, new Uint8Array(4096)) : c.discard(4096, 4096);
          await expect(op).rejects.toMatchObject({ code: codeFromNbdError(value), message: expect.stringMatching(/scripted failure/) });
          script = undefined;
          expect(c.liveConnections).toBe(1);
        }),
        { numRuns: 60 },
      );
    });
  });

  it('a structured read that fails after some data waits for DONE, then fails with the first error', async () => {
    script = (req, conn) => {
      if (req.type !== Cmd.READ) return false;
      conn.send(encodeOffsetDataHeader(false, req, 0, req.offset, 100), conn.disk.subarray(req.offset, req.offset + 100));
      conn.send(encodeErrorChunk(false, req, 0, 28, 'first', req.offset + 100));
      conn.send(encodeErrorChunk(false, req, ReplyFlag.DONE, 5, 'second'));
      return true;
    };
    await withClient(structured, async (c) => {
      await expect(c.read(0, 4096)).rejects.toMatchObject({ code: 'ENOSPC', message: expect.stringMatching(/first/) });
      expect(c.liveConnections).toBe(1);
    });
  });

  it('an error offset outside the request is a violation', async () => {
    script = (req, conn) => {
      if (req.type !== Cmd.READ) return false;
      conn.send(encodeErrorChunk(false, req, ReplyFlag.DONE, 5, 'x', req.offset + req.length));
      return true;
    };
    await withClient(structured, (c) => expect(c.read(0, 512)).rejects.toMatchObject({ code: 'EIO', message: expect.stringMatching(/violation/) }));
  });

  it('simple error replies map the same way', async () => {
    await withClient(simple, async (c) => {
      await fc.assert(
        fc.asyncProperty(errorValue, fc.constantFrom(Cmd.READ, Cmd.WRITE, Cmd.FLUSH), async (value, cmd) => {
          script = (req, conn) => {
            if (req.type !== cmd) return false;
            conn.send(encodeSimpleReply(req, value));
            return true;
          };
          const op = cmd === Cmd.READ ? c.read(0, 4096) : cmd === Cmd.WRITE ? c.write(0, new Uint8Array(4096)) : c.flush();
          await expect(op).rejects.toMatchObject({ code: codeFromNbdError(value) });
          script = undefined;
          // The stream stays framed: the next request on the same connection works.
          expect((await c.read(0, 8)).length).toBe(8);
        }),
        { numRuns: 60 },
      );
    });
  });
});
