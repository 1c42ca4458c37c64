/**
 * TRIM and WRITE_ZEROES longer than the server's maximum block size: the spec lets a client send
 * them whole and a server refuse them with EOVERFLOW or EINVAL. A refused request is redone in
 * pieces of the maximum block size, and later ones are cut from the start.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { Cmd, Err, encodeSimpleReply } from '../../../src/nbd/protocol/index.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';

const MAX = 256 * 1024;
let scripted: ScriptedServer | undefined;

afterEach(async () => {
  await scripted?.close();
  scripted = undefined;
});

describe('oversize TRIM and WRITE_ZEROES', () => {
  for (const [name, error] of [['EOVERFLOW', Err.EOVERFLOW], ['EINVAL', Err.EINVAL]] as const) {
    it(`refused with ${name}: redone in pieces of the maximum block size, and cut from then on`, async () => {
      scripted = await startScriptedServer({
        size: 4 * 1024 * 1024,
        blockSizes: [512, 4096, MAX],
        onRequest: (req, conn) => {
          if ((req.type !== Cmd.TRIM && req.type !== Cmd.WRITE_ZEROES) || req.length <= MAX) return false;
          conn.send(encodeSimpleReply(req, error));
          return true;
        },
      });
      scripted.disk.fill(0xff);
      const client = await NbdClient.connect(scripted.uri);
      try {
        await client.writeZeroes(MAX / 2, 5 * MAX);
        const zeroes = scripted.requests.filter((r) => r.type === Cmd.WRITE_ZEROES);
        expect(zeroes.map((r) => [Number(r.offset), Number(r.length)])).toEqual([
          [MAX / 2, 5 * MAX],
          ...[0, 1, 2, 3, 4].map((k) => [MAX / 2 + k * MAX, MAX]),
        ]);
        expect(scripted.disk.subarray(MAX / 2, MAX / 2 + 5 * MAX).every((b) => b === 0)).toBe(true);
        expect(scripted.disk[MAX / 2 - 1]).toBe(0xff);
        expect(scripted.disk[MAX / 2 + 5 * MAX]).toBe(0xff);
        // Known now: the next long TRIM goes in pieces at once.
        await client.discard(0, 3 * MAX);
        expect(scripted.requests.filter((r) => r.type === Cmd.TRIM).map((r) => Number(r.length))).toEqual([MAX, MAX, MAX]);
      } finally {
        await client.close();
      }
    });
  }

  it('a piece that fails does not end the request while other pieces still run', async () => {
    let lateAnswered = false;
    scripted = await startScriptedServer({
      size: 4 * 1024 * 1024,
      blockSizes: [512, 4096, MAX],
      onRequest: (req, conn) => {
        if (req.type !== Cmd.WRITE_ZEROES) return false;
        const offset = Number(req.offset);
        if (req.length > MAX) conn.send(encodeSimpleReply(req, Err.EOVERFLOW));
        else if (offset === 0) conn.send(encodeSimpleReply(req, Err.EIO));
        else if (offset === MAX) {
          setTimeout(() => {
            conn.disk.fill(0, offset, offset + req.length);
            lateAnswered = true;
            conn.send(encodeSimpleReply(req, 0));
          }, 150);
        } else return false;
        return true;
      },
    });
    const client = await NbdClient.connect(scripted.uri);
    try {
      const failure = await client.writeZeroes(0, 3 * MAX).then(
        () => undefined,
        (err: unknown) => ({ err, lateAnswered }),
      );
      expect(failure).toMatchObject({ err: { code: 'EIO' }, lateAnswered: true });
    } finally {
      await client.close();
    }
  });

  it("a server's error names the client (its `name` option) in the message and in details.driver", async () => {
    scripted = await startScriptedServer({
      onRequest: (req, conn) => {
        if (req.type !== Cmd.READ) return false;
        conn.send(encodeSimpleReply(req, Err.EIO));
        return true;
      },
    });
    const client = await NbdClient.connect(scripted.uri, { name: 'remote-disk' });
    try {
      await expect(client.read(0, 512)).rejects.toMatchObject({
        code: 'EIO',
        message: expect.stringMatching(/^remote-disk: server failed read 0\+512/),
        details: { op: 'read', offset: 0, length: 512, driver: 'remote-disk', nbdError: 5 },
      });
    } finally {
      await client.close();
    }
  });

  it('other errors, and refusals of requests within the maximum, are not retried', async () => {
    scripted = await startScriptedServer({
      size: 4 * 1024 * 1024,
      blockSizes: [512, 4096, MAX],
      onRequest: (req, conn) => {
        if (req.type !== Cmd.TRIM) return false;
        conn.send(encodeSimpleReply(req, req.length > MAX ? Err.ENOSPC : Err.EINVAL));
        return true;
      },
    });
    const client = await NbdClient.connect(scripted.uri);
    try {
      await expect(client.discard(0, 2 * MAX)).rejects.toMatchObject({ code: 'ENOSPC' });
      await expect(client.discard(0, MAX)).rejects.toMatchObject({ code: 'EINVAL' });
      expect(scripted.requests.filter((r) => r.type === Cmd.TRIM).map((r) => Number(r.length))).toEqual([2 * MAX, MAX]);
    } finally {
      await client.close();
    }
  });
});
