/**
 * Negotiation against servers with and without each feature: the client asks for extended
 * headers, structured replies, base:allocation and block sizes, and takes what it gets, down to a
 * server without fixed newstyle. Real peers where one offers the case; the scripted server for
 * the cases none does (GO refused, explicit block sizes, extended headers).
 */
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { Cmd, TransmissionFlag } from '../../../src/nbd/protocol/index.js';
import { requirePeer } from '../../helpers/peers.js';
import { expectSameBytes } from '../../helpers/bytes.js';
import { startScriptedServer, type ScriptedServerOptions } from './scripted-server.js';
import { startNbdkit, type RunningServer } from './servers.js';

async function roundTrip(client: NbdClient): Promise<void> {
  const data = new Uint8Array(3000).map((_, i) => (i * 7 + 1) & 0xff);
  await client.write(1000, data);
  expectSameBytes(await client.read(1000, 3000), data);
}

async function withScripted(options: ScriptedServerOptions, fn: (client: NbdClient) => Promise<void>, clientOptions = {}): Promise<void> {
  const server = await startScriptedServer(options);
  try {
    const client = await NbdClient.connect(server.uri, clientOptions);
    try {
      await fn(client);
    } finally {
      await client.close();
    }
  } finally {
    await server.close();
  }
}

describe('negotiation fallbacks (scripted server)', () => {
  it('uses NBD_OPT_EXPORT_NAME with a server that is not fixed-newstyle', async () => {
    await withScripted({ fixedNewstyle: false, structured: true }, async (c) => {
      expect(c.info).toMatchObject({ usedGo: false, replyMode: 'simple', blockStatus: false });
      await roundTrip(c);
    });
  });

  it('falls back to NBD_OPT_EXPORT_NAME when GO is unsupported, keeping structured replies', async () => {
    await withScripted({ go: false, structured: true, metaContext: true }, async (c) => {
      expect(c.info).toMatchObject({ usedGo: false, replyMode: 'structured', blockStatus: true });
      await roundTrip(c);
    });
  });

  it('refuses a server that agreed to extended headers and then does not know GO (no EXPORT_NAME fallback then)', async () => {
    const server = await startScriptedServer({ go: false, extended: true, structured: true });
    try {
      await expect(NbdClient.connect(server.uri, { reconnect: false })).rejects.toMatchObject({
        code: 'EIO',
        message: expect.stringMatching(/GO unsupported by a server that agreed to extended headers/),
      });
      expect(server.requests).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('negotiates extended headers when offered, and simple replies when nothing is', async () => {
    await withScripted({ extended: true, structured: true, metaContext: true }, async (c) => {
      expect(c.info).toMatchObject({ usedGo: true, replyMode: 'extended', blockStatus: true });
      await roundTrip(c);
    });
    await withScripted({}, async (c) => {
      expect(c.info).toMatchObject({ usedGo: true, replyMode: 'simple', blockStatus: false });
      expect(c.capabilities.canBlockStatus).toBe(false);
      await roundTrip(c);
    });
  });

  it('sends each option only after the final reply to the previous one, and SET_META_CONTEXT only once structured replies are agreed', async () => {
    const setups: ScriptedServerOptions[] = [
      { extended: true, structured: true, metaContext: true, blockSizes: [1, 4096, 1024 * 1024] },
      { structured: true, metaContext: true, blockSizes: [1, 4096, 1024 * 1024] },
      { structured: true, metaContext: true, go: false },
      { structured: false, metaContext: true },
      {},
    ];
    for (const setup of setups) {
      const server = await startScriptedServer(setup);
      try {
        const client = await NbdClient.connect(server.uri);
        await roundTrip(client);
        await client.close();
        expect(server.optionRuleBreaks, JSON.stringify(setup)).toEqual([]);
      } finally {
        await server.close();
      }
    }
  });

  it('does not ask for what the options turn off', async () => {
    await withScripted(
      { extended: true, structured: true, metaContext: true },
      async (c) => expect(c.info).toMatchObject({ replyMode: 'structured', blockStatus: false }),
      { extendedHeaders: false, blockStatus: false },
    );
    await withScripted({ extended: true, structured: true }, async (c) => expect(c.info.replyMode).toBe('simple'), {
      extendedHeaders: false,
      structuredReplies: false,
    });
    // Extended headers carry structured replies with them: turning structured replies off alone is enough.
    await withScripted({ extended: true, structured: true }, async (c) => expect(c.info.replyMode).toBe('simple'), { structuredReplies: false });
  });

  it('maps transmission flags to capabilities, bit by bit', async () => {
    const T = TransmissionFlag;
    const bits = [T.READ_ONLY, T.SEND_FLUSH, T.SEND_FUA, T.SEND_TRIM, T.SEND_WRITE_ZEROES, T.CAN_MULTI_CONN, T.SEND_CACHE, T.SEND_FAST_ZERO];
    await fc.assert(
      fc.asyncProperty(fc.subarray(bits), async (chosen) => {
        const flags = chosen.reduce((a, b) => a | b, 0);
        await withScripted({ flags }, async (c) => {
          const has = (b: number): boolean => (flags & b) !== 0;
          expect(c.capabilities).toEqual({
            canWrite: !has(T.READ_ONLY),
            canFlush: has(T.SEND_FLUSH),
            canFua: has(T.SEND_FUA),
            canDiscard: has(T.SEND_TRIM),
            canZero: has(T.SEND_WRITE_ZEROES),
            canFastZero: has(T.SEND_WRITE_ZEROES) && has(T.SEND_FAST_ZERO),
            canBlockStatus: false,
            canMultiConn: has(T.CAN_MULTI_CONN),
            canCache: has(T.SEND_CACHE),
          });
        });
      }),
      { numRuns: 30 },
    );
  });

  it('honours the server block sizes: aligned requests only, reads and writes cut at the maximum', async () => {
    const server = await startScriptedServer({ blockSizes: [512, 4096, 65536], structured: true });
    try {
      const c = await NbdClient.connect(server.uri);
      expect(c.limits).toMatchObject({ minBlockSize: 512, preferredBlockSize: 4096, maxTransfer: 65536 });
      const data = new Uint8Array(300 * 1024).map((_, i) => i % 251);
      await c.write(512, data);
      expectSameBytes(await c.read(512, data.length), data);
      const rw = server.requests.filter((r) => r.type === Cmd.READ || r.type === Cmd.WRITE);
      expect(rw.length).toBe(10);
      expect(rw.every((r) => r.length <= 65536 && r.offset % 512 === 0 && r.length % 512 === 0)).toBe(true);
      await expect(c.read(100, 512)).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(c.write(0, new Uint8Array(100))).rejects.toMatchObject({ code: 'EINVAL' });
      await c.close();
    } finally {
      await server.close();
    }
  });

  it('refuses nonsensical block sizes; an export size the minimum does not divide ends at the last whole block', async () => {
    for (const blockSizes of [
      [3, 4096, 65536],
      [512, 256, 65536],
      [4096, 4096, 1000],
      [131072, 131072, 1 << 20],
    ] as const) {
      const server = await startScriptedServer({ blockSizes });
      await expect(NbdClient.connect(server.uri), blockSizes.join()).rejects.toMatchObject({ code: 'EIO' });
      await server.close();
    }
    const server = await startScriptedServer({ blockSizes: [4096, 4096, 65536], size: 1024 * 1024 + 512 });
    const client = await NbdClient.connect(server.uri);
    expect(client.size).toBe(1024 * 1024);
    await client.close();
    await server.close();
  });
});

const nbdkit = requirePeer('nbdkit');

describe.skipIf(!nbdkit)('negotiation with nbdkit', () => {
  let server: (RunningServer & { removeDir(): void }) | undefined;
  afterEach(async () => {
    await server?.stop();
    server?.removeDir();
    server = undefined;
  });

  it('gets structured replies and base:allocation, and falls back to simple replies on request', async () => {
    server = await startNbdkit(['memory', '1M']);
    const full = await NbdClient.connect(server.uri);
    expect(full.info).toMatchObject({ usedGo: true, replyMode: 'structured', blockStatus: true });
    await roundTrip(full);
    await full.close();
    const plain = await NbdClient.connect(server.uri, { structuredReplies: false });
    expect(plain.info).toMatchObject({ replyMode: 'simple', blockStatus: false });
    await roundTrip(plain);
    await plain.close();
    await server.stop();
  });

  it('uses NBD_OPT_EXPORT_NAME when nbdkit hides fixed newstyle (--mask-handshake=0)', async () => {
    server = await startNbdkit(['--mask-handshake=0', 'memory', '1M']);
    const c = await NbdClient.connect(server.uri);
    expect(c.info).toMatchObject({ usedGo: false, replyMode: 'simple' });
    await roundTrip(c);
    await c.close();
    await server.stop();
  });

  it('reports an unknown export as EINVAL', async () => {
    server = await startNbdkit(['--filter=exportname', 'memory', '1M', 'exportname-strict=true', 'exportname=only']);
    await expect(NbdClient.connect(server.uri, { exportName: 'nope' })).rejects.toMatchObject({ code: 'EINVAL' });
    const ok = await NbdClient.connect(server.uri, { exportName: 'only' });
    await ok.close();
    await server.stop();
  });
});
