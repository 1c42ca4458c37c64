/**
 * A reply chunk that breaks the protocol fails the request it names with EIO ("protocol
 * violation"), once: that request is not replayed (on a reconnect, or on the other connections)
 * as if its connection had merely been lost. The other requests in flight are replayed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { Cmd, ReplyFlag, TransmissionFlag, encodeChunkHeader, encodeHoleChunk } from '../../../src/nbd/protocol/index.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';

let scripted: ScriptedServer | undefined;
afterEach(async () => {
  await scripted?.close();
  scripted = undefined;
});

type Req = Parameters<typeof encodeChunkHeader>[1];
const MALFORMED: Record<string, (r: Req & { offset: number }) => Buffer[]> = {
  'an unknown chunk type that may not be skipped': (r) => [encodeChunkHeader(false, r, ReplyFlag.DONE, 3, 0)],
  'a hole of length 0': (r) => {
    const b = encodeHoleChunk(false, r, ReplyFlag.DONE, r.offset, 1);
    b.writeUInt32BE(0, 28);
    return [b];
  },
  'a NONE chunk with a payload': (r) => [encodeChunkHeader(false, r, ReplyFlag.DONE, 0, 4), Buffer.alloc(4)],
  'an error chunk with error value 0': (r) => [encodeChunkHeader(false, r, ReplyFlag.DONE, 0x8001, 6), Buffer.alloc(6)],
};

describe('a malformed reply chunk', () => {
  for (const [name, chunks] of Object.entries(MALFORMED)) {
    it(`${name}: fails the READ it answers with EIO, sent once; a request beside it is replayed and succeeds`, async () => {
      let badReads = 0;
      scripted = await startScriptedServer({
        structured: true,
        flags: TransmissionFlag.SEND_FLUSH | TransmissionFlag.CAN_MULTI_CONN,
        onRequest: (req, conn) => {
          if (req.type !== Cmd.READ || req.offset !== 0) return false;
          badReads++;
          for (const b of chunks(req as unknown as Req & { offset: number })) conn.send(b);
          return true;
        },
      });
      const client = await NbdClient.connect(scripted.uri, { connections: 2, reconnectDelay: 5000, backoff: { initialDelay: 5, maxDelay: 10 } });
      try {
        const [bad, good] = await Promise.allSettled([client.read(0, 16), client.read(4096, 16)]);
        expect(bad).toMatchObject({ status: 'rejected', reason: { code: 'EIO', message: expect.stringMatching(/^nbd: protocol violation/), details: { op: 'read', driver: 'nbd' } } });
        expect(good.status).toBe('fulfilled');
        expect(badReads).toBe(1);
      } finally {
        await client.close();
      }
    });
  }
});
