/**
 * Reply rules that only apply under extended headers — the header echoes the request's offset,
 * and block status comes as 64-bit BLOCK_STATUS_EXT — and what the client keeps of block-status
 * extents that run past the range it asked about.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { BaseAllocation, Cmd, ReplyFlag, encodeBlockStatusChunk, encodeNoneChunk, type NbdRequest as WireRequest } from '../../../src/nbd/protocol/index.js';
import { startScriptedServer, type ScriptedConnection, type ScriptedServer } from './scripted-server.js';

type Script = (req: WireRequest, conn: ScriptedConnection) => boolean | void;

const SIZE = 1024 * 1024;
let script: Script | undefined;
let server: ScriptedServer;

beforeAll(async () => {
  server = await startScriptedServer({ size: SIZE, structured: true, extended: true, metaContext: true, onRequest: (req, conn) => script?.(req, conn) });
});
afterAll(async () => {
  await server.close();
});

/** Runs `fn` with a fresh client that does not reconnect (a violation leaves it disconnected). */
async function withClient<T>(fn: (c: NbdClient) => Promise<T>): Promise<T> {
  const c = await NbdClient.connect(server.uri, { reconnect: false });
  try {
    expect(c.info.replyMode).toBe('extended');
    expect(c.info.blockStatus).toBe(true);
    return await fn(c);
  } finally {
    script = undefined;
    await c.close();
  }
}

/** The request as a reply target with another offset echoed. */
function echoing(req: WireRequest, offset: number): { cookieHi: number; cookieLo: number; offset: number } {
  return { cookieHi: req.cookieHi, cookieLo: req.cookieLo, offset };
}

const CONTEXT = 1; // the id the scripted server gives base:allocation

describe('extended headers', () => {
  it('a reply echoing another offset than the request’s fails the request with EIO', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(SIZE - 4096), fc.integer({ min: -4096, max: 4096 }).filter((d) => d !== 0), async (offset, delta) => {
        await withClient(async (c) => {
          script = (req, conn) => {
            if (req.type !== Cmd.WRITE) return false;
            const echoed = req.offset + delta >= 0 ? req.offset + delta : req.offset - delta;
            conn.send(encodeNoneChunk(true, echoing(req, echoed)));
            return true;
          };
          await expect(c.write(offset, new Uint8Array(512))).rejects.toMatchObject({ code: 'EIO', message: expect.stringMatching(/echoes offset/) });
        });
      }),
      { numRuns: 25 },
    );
  });

  it('a 32-bit BLOCK_STATUS chunk under extended headers fails the request with EIO; BLOCK_STATUS_EXT is accepted', async () => {
    for (const wide of [false, true]) {
      await withClient(async (c) => {
        script = (req, conn) => {
          if (req.type !== Cmd.BLOCK_STATUS) return false;
          conn.send(encodeBlockStatusChunk(true, req, ReplyFlag.DONE, CONTEXT, [{ length: req.length, flags: BaseAllocation.STATE_HOLE }], wide));
          return true;
        };
        const status = c.blockStatus(4096, 8192);
        if (wide) await expect(status).resolves.toEqual([{ offset: 4096, length: 8192, allocated: false, zero: false }]);
        else await expect(status).rejects.toMatchObject({ code: 'EIO', message: expect.stringMatching(/BLOCK_STATUS_EXT expected/) });
      });
    }
  });

  it('extents past the requested range are cut off at its end', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(SIZE / 2),
        fc.integer({ min: 1, max: 64 * 1024 }),
        fc.array(fc.integer({ min: 1, max: 256 * 1024 }), { minLength: 1, maxLength: 40 }),
        async (offset, length, lengths) => {
          await withClient(async (c) => {
            script = (req, conn) => {
              if (req.type !== Cmd.BLOCK_STATUS) return false;
              // A first extent covering the request, then whatever the server cares to add.
              const extents = [req.length, ...lengths].map((l, i) => ({ length: l, flags: i % 2 === 0 ? 0 : BaseAllocation.STATE_HOLE }));
              conn.send(encodeBlockStatusChunk(true, req, ReplyFlag.DONE, CONTEXT, extents));
              return true;
            };
            const extents = await c.blockStatus(offset, length);
            expect(extents).toEqual([{ offset, length, allocated: true, zero: false }]);
          });
        },
      ),
      { numRuns: 25 },
    );
  });
});
