/**
 * Block status from a server that ignores its own minimum block size, aligned for callers: whole
 * blocks from the start, contiguous, and never claiming more than was said (zero only where every
 * byte was reported zero, a hole only where every byte was reported unallocated).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { alignExtents } from '../../../src/align-extents.js';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { Cmd, ReplyFlag, encodeBlockStatusChunk } from '../../../src/nbd/protocol/index.js';
import type { BlockExtent } from '../../../src/types.js';
import { startScriptedServer } from './scripted-server.js';
import { expectAlignedTiling } from '../../helpers/ranges.js';

const arb = fc
  .tuple(
    fc.constantFrom(512, 4096),
    fc.integer({ min: 0, max: 64 }),
    fc.array(fc.tuple(fc.integer({ min: 1, max: 9000 }), fc.boolean(), fc.boolean()), { minLength: 1, maxLength: 20 }),
  )
  .map(([align, startBlock, parts]) => {
    const start = startBlock * align;
    let pos = start;
    const extents: BlockExtent[] = parts.map(([length, allocated, zero]) => {
      const e = { offset: pos, length, allocated, zero };
      pos += length;
      return e;
    });
    return { align, start, extents, reportedEnd: pos };
  });

describe('alignExtents', () => {
  it('whole blocks from the start, contiguous, flags never stronger than every byte reported', () => {
    fc.assert(
      fc.property(arb, ({ align, start, extents, reportedEnd }) => {
        const out = alignExtents(extents, align);
        expect(out.length).toBeGreaterThan(0);
        const end = expectAlignedTiling(out, start, align);
        for (const e of out) {
          // Every reported byte inside it agrees with a weaker-or-equal claim.
          for (const r of extents) {
            const overlap = Math.min(r.offset + r.length, e.offset + e.length) - Math.max(r.offset, e.offset);
            if (overlap <= 0) continue;
            if (e.zero) expect(r.zero).toBe(true);
            if (!e.allocated) expect(r.allocated).toBe(false);
          }
          // Bytes nobody reported on are never called zero or a hole.
          if (e.offset + e.length > reportedEnd) expect(e.zero === false && e.allocated === true).toBe(true);
        }
        // Up to the last whole block reported, or one block when less than that was reported.
        expect(end).toBe(Math.max(Math.floor(reportedEnd / align) * align, start + align));
      }),
      { numRuns: 500 },
    );
  });

  it('leaves aligned extents as they are', () => {
    const e: BlockExtent[] = [
      { offset: 0, length: 4096, allocated: true, zero: false },
      { offset: 4096, length: 8192, allocated: false, zero: true },
    ];
    expect(alignExtents(e, 4096)).toEqual(e);
  });
});

describe('NbdClient block status from a server that ignores its minimum block size', () => {
  it('answers in whole blocks, so a caller walking the map from extent to extent never sends an unaligned request', async () => {
    const server = await startScriptedServer({
      structured: true,
      metaContext: true,
      blockSizes: [4096, 4096, 1 << 20],
      size: 64 * 1024,
      onRequest: (req, conn) => {
        if (req.type !== Cmd.BLOCK_STATUS) return false;
        // 1000 zero bytes, then data to the end of the request: the first block is split.
        const rest = req.length - 1000;
        conn.send(
          encodeBlockStatusChunk(false, req as never, ReplyFlag.DONE, 1, [
            { length: 1000, flags: 3 },
            { length: rest, flags: 0 },
          ]),
        );
        return true;
      },
    });
    try {
      const client = await NbdClient.connect(server.uri, { reconnect: false });
      const seen: BlockExtent[] = [];
      for (let pos = 0; pos < client.size; ) {
        const extents = await client.blockStatus(pos, client.size - pos);
        for (const e of extents) expect(e.offset % 4096 === 0 && e.length % 4096 === 0).toBe(true);
        seen.push(...extents);
        pos = extents[extents.length - 1].offset + extents[extents.length - 1].length;
      }
      // The split first block is data (one part of it is); nothing is called zero that was not.
      expect(seen[0]).toMatchObject({ offset: 0, zero: false, allocated: true });
      await client.close();
    } finally {
      await server.close();
    }
  });
});
