/**
 * Option haggling over a real socket: every option gets its spec answer, unknown and malformed
 * ones never hang or drop the connection, and the states that gate transmission (structured
 * replies, extended headers, metadata contexts) follow the rules qemu and libnbd rely on.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import {
  ClientFlag,
  Cmd,
  CmdFlag,
  encodeExportNameOption,
  encodeInfoOption,
  encodeMetaContextOption,
  encodeOption,
  HandshakeFlag,
  Info,
  Opt,
  Rep,
  TransmissionFlag,
} from '../../../src/nbd/protocol/index.js';
import { serverScope, startServer } from './fixture.js';
import { RawClient } from './raw-client.js';

const scope = serverScope();

async function client(options: Parameters<typeof startServer>[0] = {}): Promise<RawClient> {
  scope.fixture ??= await startServer(options);
  const c = await RawClient.connect(scope.fixture.port);
  scope.clients.push(c);
  return c;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

describe('NBD server negotiation', () => {
  it('greets with fixed newstyle and NO_ZEROES', async () => {
    const c = await client();
    expect(await c.start()).toBe(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES);
  });

  it('answers any unknown option with ERR_UNSUP and keeps negotiating', async () => {
    const c = await client();
    await c.start();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.constant(Opt.PEEK_EXPORT), fc.integer({ min: 12, max: 0xffffffff })),
        fc.uint8Array({ maxLength: 2048 }),
        async (code, data) => {
          const replies = await c.option(encodeOption(code, data));
          expect(replies).toEqual([expect.objectContaining({ kind: 'error', option: code, error: Rep.ERR_UNSUP })]);
        },
      ),
      { numRuns: 60 },
    );
    await c.go('');
    expect((await c.read(0, 512)).error).toBe(0);
  });

  it('lists every export with its description', async () => {
    scope.fixture = await startServer({ exports: {} });
    scope.fixture.server.addExport('', new MemoryDriver({ size: 1024 }));
    scope.fixture.server.addExport('disk two', new MemoryDriver({ size: 2048 }), { description: 'the second' });
    const c = await client();
    await c.start();
    const replies = await c.option(encodeOption(Opt.LIST));
    expect(replies).toEqual([
      { kind: 'server', option: Opt.LIST, name: '', description: '' },
      { kind: 'server', option: Opt.LIST, name: 'disk two', description: 'the second' },
      { kind: 'ack', option: Opt.LIST },
    ]);
    expect((await c.option(encodeOption(Opt.LIST, new Uint8Array(3)))).at(-1)).toMatchObject({ error: Rep.ERR_INVALID });
  });

  it('INFO describes an export; unknown exports get ERR_UNKNOWN', async () => {
    scope.fixture = await startServer({ exports: { a: new MemoryDriver({ size: 3 * 1024 * 1024 }) } });
    scope.fixture.server.addExport('ro', new MemoryDriver({ size: 4096 }), { readOnly: true, description: 'read only' });
    const c = await client();
    await c.start();
    expect((await c.option(encodeInfoOption(Opt.INFO, 'nope'))).at(-1)).toMatchObject({ kind: 'error', error: Rep.ERR_UNKNOWN });
    const replies = await c.option(encodeInfoOption(Opt.INFO, 'ro', [Info.NAME, Info.DESCRIPTION, Info.BLOCK_SIZE]));
    const infos = replies.filter((r) => r.kind === 'info').map((r) => (r.kind === 'info' ? r.info : undefined));
    expect(infos).toContainEqual({ type: 'export', size: 4096, transmissionFlags: expect.any(Number) });
    expect(infos).toContainEqual({ type: 'name', name: 'ro' });
    expect(infos).toContainEqual({ type: 'description', description: 'read only' });
    const bs = infos.find((i) => i?.type === 'blockSize');
    expect(bs).toBeDefined();
    if (bs?.type === 'blockSize') {
      // qemu's rules: min a power of two ≤ 64 KiB; preferred a power of two ≥ max(min, 512); max ≥ preferred.
      expect(isPowerOfTwo(bs.minimum) && bs.minimum <= 65536).toBe(true);
      expect(isPowerOfTwo(bs.preferred) && bs.preferred >= Math.max(bs.minimum, 512)).toBe(true);
      expect(bs.maximum).toBeGreaterThanOrEqual(bs.preferred);
      expect(bs.maximum % bs.minimum).toBe(0);
    }
    const exp = infos.find((i) => i?.type === 'export');
    if (exp?.type === 'export') expect(exp.transmissionFlags & TransmissionFlag.READ_ONLY).toBe(TransmissionFlag.READ_ONLY);
    expect(replies.at(-1)).toEqual({ kind: 'ack', option: Opt.INFO });
    // Still negotiating after INFO.
    await c.go('a');
    expect(c.size).toBe(3 * 1024 * 1024);
  });

  it('GO with zero information requests works (the kernel client) and sends only INFO_EXPORT', async () => {
    const c = await client();
    await c.start();
    const replies = await c.option(encodeInfoOption(Opt.GO, '', []));
    expect(replies.map((r) => (r.kind === 'info' ? r.info.type : r.kind))).toEqual(['export', 'ack']);
  });

  it('EXPORT_NAME enters transmission, with the 124 zero bytes unless NO_ZEROES', async () => {
    for (const flags of [ClientFlag.FIXED_NEWSTYLE, ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES]) {
      const c = await client();
      await c.start(flags);
      c.socket.write(encodeExportNameOption(''));
      const bytes = await new Promise<Buffer>((resolve) => {
        const got: Buffer[] = [];
        const want = (flags & ClientFlag.NO_ZEROES) !== 0 ? 10 : 134;
        const on = (b: Buffer): void => {
          got.push(b);
          if (Buffer.concat(got).length >= want) {
            c.socket.off('data', on);
            resolve(Buffer.concat(got));
          }
        };
        c.socket.on('data', on);
      });
      expect(bytes.length).toBe((flags & ClientFlag.NO_ZEROES) !== 0 ? 10 : 134);
      expect(Number(bytes.readBigUInt64BE(0))).toBe(4 * 1024 * 1024);
      expect(bytes.readUInt16BE(8) & TransmissionFlag.HAS_FLAGS).toBe(1);
      expect(bytes.subarray(10).every((b) => b === 0)).toBe(true);
    }
  });

  it('EXPORT_NAME for an unknown export closes only that connection', async () => {
    const c = await client();
    await c.start();
    c.socket.write(encodeExportNameOption('missing'));
    await c.closed;
    const other = await client();
    await other.start();
    await other.go('');
    expect((await other.read(0, 16)).error).toBe(0);
  });

  it('EXPORT_NAME after EXTENDED_HEADERS disconnects instead of entering transmission', async () => {
    const c = await client();
    await c.start();
    expect((await c.option(encodeOption(Opt.EXTENDED_HEADERS))).at(-1)?.kind).toBe('ack');
    let received = 0;
    c.socket.on('data', (d: Buffer) => (received += d.length));
    c.socket.write(encodeExportNameOption(''));
    await c.closed;
    // No export-name reply (size and flags) was sent.
    expect(received).toBe(0);
  });

  it('ABORT is acknowledged, then the connection closes', async () => {
    const c = await client();
    await c.start();
    expect(await c.option(encodeOption(Opt.ABORT))).toEqual([{ kind: 'ack', option: Opt.ABORT }]);
    await c.closed;
  });

  it('drops a client that sets unknown client flags', async () => {
    const c = await client();
    await c.start(ClientFlag.FIXED_NEWSTYLE | 0x100);
    await c.closed;
  });

  it('answers an option longer than 64 KiB with ERR_TOO_BIG, and drops one beyond 1 MiB', async () => {
    const c = await client();
    await c.start();
    const big = await c.option(encodeOption(Opt.INFO, new Uint8Array(100 * 1024)));
    expect(big.at(-1)).toMatchObject({ kind: 'error', error: Rep.ERR_TOO_BIG });
    c.socket.write(encodeOption(Opt.INFO, new Uint8Array(0)).subarray(0, 12));
    const header = Buffer.alloc(4);
    header.writeUInt32BE(2 * 1024 * 1024);
    c.socket.write(header);
    await c.closed;
  });

  it('answers an unknown option with ERR_UNSUP whatever its length up to 1 MiB, and goes on', async () => {
    const c = await client();
    await c.start();
    for (const length of [0, 64 * 1024 + 1, 1024 * 1024]) {
      const unknown = await c.option(encodeOption(99, new Uint8Array(length)));
      expect(unknown.at(-1), `${length} bytes`).toMatchObject({ kind: 'error', error: Rep.ERR_UNSUP });
    }
    await c.go('');
  });

  it('STARTTLS without TLS configured is refused with ERR_POLICY', async () => {
    const c = await client();
    await c.start();
    expect((await c.option(encodeOption(Opt.STARTTLS))).at(-1)).toMatchObject({ error: Rep.ERR_POLICY });
    await c.go('');
  });

  it('structured replies: a repeat or data is ERR_INVALID; after extended headers it is ERR_EXT_HEADER_REQD', async () => {
    const c = await client();
    await c.start();
    expect((await c.option(encodeOption(Opt.STRUCTURED_REPLY, new Uint8Array(1)))).at(-1)).toMatchObject({ error: Rep.ERR_INVALID });
    expect((await c.option(encodeOption(Opt.STRUCTURED_REPLY))).at(-1)).toEqual({ kind: 'ack', option: Opt.STRUCTURED_REPLY });
    expect((await c.option(encodeOption(Opt.STRUCTURED_REPLY))).at(-1)).toMatchObject({ error: Rep.ERR_INVALID });
    expect((await c.option(encodeOption(Opt.EXTENDED_HEADERS))).at(-1)).toEqual({ kind: 'ack', option: Opt.EXTENDED_HEADERS });
    expect((await c.option(encodeOption(Opt.STRUCTURED_REPLY))).at(-1)).toMatchObject({ error: Rep.ERR_EXT_HEADER_REQD });
    expect((await c.option(encodeOption(Opt.EXTENDED_HEADERS))).at(-1)).toMatchObject({ error: Rep.ERR_INVALID });
  });

  it('meta contexts: SET needs structured replies and returns exactly base:allocation; LIST lists it', async () => {
    const c = await client();
    await c.start();
    const early = await c.option(encodeMetaContextOption(Opt.SET_META_CONTEXT, '', ['base:allocation']));
    expect(early.at(-1)).toMatchObject({ kind: 'error', error: Rep.ERR_INVALID });
    const listAll = await c.option(encodeMetaContextOption(Opt.LIST_META_CONTEXT, '', []));
    expect(listAll).toEqual([
      { kind: 'metaContext', option: Opt.LIST_META_CONTEXT, contextId: 0, name: 'base:allocation' },
      { kind: 'ack', option: Opt.LIST_META_CONTEXT },
    ]);
    const listNs = await c.option(encodeMetaContextOption(Opt.LIST_META_CONTEXT, '', ['base:']));
    expect(listNs.map((r) => r.kind)).toEqual(['metaContext', 'ack']);
    await c.option(encodeOption(Opt.STRUCTURED_REPLY));
    const ignored = await c.option(encodeMetaContextOption(Opt.SET_META_CONTEXT, '', ['base:', 'qemu:dirty-bitmap:x', 'x-foo:bar']));
    expect(ignored).toEqual([{ kind: 'ack', option: Opt.SET_META_CONTEXT }]);
    const unknownExport = await c.option(encodeMetaContextOption(Opt.SET_META_CONTEXT, 'nope', ['base:allocation']));
    expect(unknownExport.at(-1)).toMatchObject({ kind: 'error', error: Rep.ERR_UNKNOWN });
    const set = await c.option(encodeMetaContextOption(Opt.SET_META_CONTEXT, '', ['qemu:allocation-depth', 'base:allocation']));
    expect(set).toEqual([
      { kind: 'metaContext', option: Opt.SET_META_CONTEXT, contextId: expect.any(Number), name: 'base:allocation' },
      { kind: 'ack', option: Opt.SET_META_CONTEXT },
    ]);
  });

  it('BLOCK_STATUS works only for the export the context was selected on', async () => {
    scope.fixture = await startServer({ exports: { a: new MemoryDriver({ size: 65536 }), b: new MemoryDriver({ size: 65536 }) } });
    const c = await client();
    await c.start();
    await c.option(encodeOption(Opt.STRUCTURED_REPLY));
    await c.option(encodeMetaContextOption(Opt.SET_META_CONTEXT, 'a', ['base:allocation']));
    await c.go('b');
    const r = await c.request(Cmd.BLOCK_STATUS, 0, 4096, { flags: CmdFlag.REQ_ONE });
    expect(r.error).toBe(22);
    const d = await client();
    await d.start();
    await d.go('a', { structured: true, metaContexts: ['base:allocation'] });
    const ok = await d.request(Cmd.BLOCK_STATUS, 0, 4096, { flags: CmdFlag.REQ_ONE });
    expect(ok.error).toBe(0);
    expect(ok.chunks).toHaveLength(1);
    expect(ok.chunks[0]).toMatchObject({ kind: 'blockStatus', contextId: d.contextId, extents: [{ length: 4096, flags: 3 }] });
  });

  it('a failed SET_META_CONTEXT clears an earlier selection', async () => {
    const c = await client();
    await c.start();
    await c.option(encodeOption(Opt.STRUCTURED_REPLY));
    await c.option(encodeMetaContextOption(Opt.SET_META_CONTEXT, '', ['base:allocation']));
    await c.option(encodeMetaContextOption(Opt.SET_META_CONTEXT, 'nope', ['base:allocation']));
    await c.go('');
    expect((await c.request(Cmd.BLOCK_STATUS, 0, 512)).error).toBe(22);
  });

  it('refuses options with ERR_TLS_REQD until STARTTLS on a TLS-only server, and drops EXPORT_NAME', async () => {
    const psk = new Map([['alice', Buffer.alloc(32, 7)]]);
    const c = await client({ tls: { psk } });
    await c.start();
    for (const opt of [encodeOption(Opt.LIST), encodeInfoOption(Opt.GO, ''), encodeOption(Opt.STRUCTURED_REPLY), encodeOption(77)]) {
      expect((await c.option(opt)).at(-1)).toMatchObject({ kind: 'error', error: Rep.ERR_TLS_REQD });
    }
    c.socket.write(encodeExportNameOption(''));
    await c.closed;
  });

  it('answers a STARTTLS that carries data with ERR_INVALID on a TLS-only server too, and still upgrades after a proper one', async () => {
    const psk = new Map([['alice', Buffer.alloc(32, 7)]]);
    const c = await client({ tls: { psk } });
    await c.start();
    expect((await c.option(encodeOption(Opt.STARTTLS, Buffer.from('junk')))).at(-1)).toMatchObject({ kind: 'error', error: Rep.ERR_INVALID });
    expect((await c.option(encodeOption(Opt.STARTTLS))).at(-1)).toEqual({ kind: 'ack', option: Opt.STARTTLS });
  });

  it('a failed or abandoned TLS handshake ends only that connection, and nothing leaks', async () => {
    const psk = new Map([['alice', Buffer.alloc(32, 7)]]);
    const garbage = await client({ tls: { psk, handshakeTimeoutMs: 500 } });
    await garbage.start();
    expect((await garbage.option(encodeOption(Opt.STARTTLS))).at(-1)).toEqual({ kind: 'ack', option: Opt.STARTTLS });
    garbage.socket.write(Buffer.alloc(300, 0x42));
    await garbage.closed;
    const quitter = await client();
    await quitter.start();
    await quitter.option(encodeOption(Opt.STARTTLS));
    quitter.socket.end();
    await quitter.closed;
    const silent = await client();
    await silent.start();
    await silent.option(encodeOption(Opt.STARTTLS));
    await silent.closed; // handshake timeout
    for (let i = 0; i < 40 && scope.fixture!.server.connectionCount > 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(scope.fixture!.server.connectionCount).toBe(0);
  });

  it('lets a client that ends right after the STARTTLS ACK go at once, not at the handshake timeout', async () => {
    const psk = new Map([['alice', Buffer.alloc(32, 7)]]);
    const c = await client({ tls: { psk, handshakeTimeoutMs: 60_000 }, negotiationTimeoutMs: 60_000 });
    await c.start();
    expect((await c.option(encodeOption(Opt.STARTTLS))).at(-1)).toEqual({ kind: 'ack', option: Opt.STARTTLS });
    c.socket.end();
    // Either timeout would take a minute; the connection must be gone long before.
    const gone = await Promise.race([c.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
    expect(gone).toBe(true);
    for (let i = 0; i < 40 && scope.fixture!.server.connectionCount > 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(scope.fixture!.server.connectionCount).toBe(0);
  });

  it('drops a client that does not finish negotiating in time', async () => {
    const c = await client({ negotiationTimeoutMs: 200 });
    await c.start();
    await c.closed;
  });
});
