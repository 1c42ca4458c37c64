/**
 * What a hostile or broken client must not be able to do: crash the process with a request the
 * reply encoder cannot echo, grow the server's memory by pipelining without reading (during
 * negotiation or transmission), or hold `close()` open by never reading.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import { ClientFlag, Cmd, Opt, Rep, encodeClientFlags, encodeInfoOption, encodeOption } from '../../../src/nbd/protocol/index.js';
import type { NbdServerOptions } from '../../../src/nbd/server/index.js';
import { liveArrayBufferBytes } from '../../helpers/memory.js';
import { sleep } from '../../helpers/peers.js';
import { startServer, type ServerFixture } from './fixture.js';
import { RawClient, encodeWideRequestHeader } from './raw-client.js';

const EINVAL = 22;
const ENOSPC = 28;
const MiB = 1024 * 1024;
const U64_MAX = 2n ** 64n - 1n;

let fixture: ServerFixture | undefined;
const sockets: Socket[] = [];
const clients: RawClient[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const c of clients.splice(0)) c.destroy();
  await fixture?.close();
  fixture = undefined;
});

async function serve(options: NbdServerOptions & { size?: number } = {}): Promise<ServerFixture & { errors: unknown[] }> {
  const f = await startServer({ ...options, exports: { '': new MemoryDriver({ size: options.size ?? 4 * MiB }) } });
  fixture = f;
  const errors: unknown[] = [];
  f.server.on('error', (e) => errors.push(e));
  return Object.assign(f, { errors });
}

async function open(port: number, mode: 'simple' | 'structured' | 'extended'): Promise<RawClient> {
  const c = await RawClient.connect(port);
  clients.push(c);
  await c.start();
  await c.go('', { structured: mode === 'structured', extended: mode === 'extended', metaContexts: mode === 'simple' ? undefined : ['base:allocation'] });
  return c;
}

/** A raw socket past the greeting, its client flags sent; it never reads anything. */
async function deafSocket(port: number): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  sockets.push(s);
  s.on('error', () => {});
  await new Promise<void>((resolve) => s.once('connect', () => resolve()));
  s.write(encodeClientFlags(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES));
  // Not reading: no 'data' listener, and the stream stays paused.
  return s;
}

/** Writes `blob` repeatedly while the socket takes it, for at most `budget` bytes or `ms`. */
async function floodWhileAccepted(s: Socket, blob: Buffer, budget: number, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  let sent = 0;
  while (sent < budget && Date.now() < deadline && !s.destroyed) {
    if (s.write(blob)) {
      sent += blob.length;
      continue;
    }
    sent += blob.length;
    const drained = await Promise.race([new Promise<boolean>((resolve) => s.once('drain', () => resolve(true))), sleep(Math.max(1, deadline - Date.now())).then(() => false)]);
    if (!drained) break;
  }
  return sent;
}

describe('requests no reply can echo as a double', () => {
  const table: [string, number, bigint, bigint, number][] = [
    // name, type, offset, length, expected error
    ['READ at 2^64-1', Cmd.READ, U64_MAX, 512n, EINVAL],
    ['READ at 2^53+1', Cmd.READ, 2n ** 53n + 1n, 1n, EINVAL],
    ['empty READ at 2^63', Cmd.READ, 2n ** 63n, 0n, EINVAL],
    ['WRITE_ZEROES at 2^64-1', Cmd.WRITE_ZEROES, U64_MAX, 1n, ENOSPC],
    ['TRIM ending at 2^64', Cmd.TRIM, U64_MAX - 511n, 512n, EINVAL],
    ['CACHE at 2^60+3', Cmd.CACHE, 2n ** 60n + 3n, 16n, EINVAL],
    ['BLOCK_STATUS at 2^64-1', Cmd.BLOCK_STATUS, U64_MAX, 1n, EINVAL],
    ['FLUSH at 2^64-1', Cmd.FLUSH, U64_MAX, 0n, EINVAL],
    ['FLUSH with a length', Cmd.FLUSH, 0n, 4096n, EINVAL],
    ['FLUSH', Cmd.FLUSH, 0n, 0n, 0],
  ];

  for (const mode of ['simple', 'structured', 'extended'] as const) {
    it(`answers each with the spec error and keeps the connection (${mode} replies)`, async () => {
      const f = await serve();
      const c = await open(f.port, mode);
      for (const [name, type, offset, length, want] of table) {
        const r = await c.requestWide(type, offset, length);
        expect({ name, error: r.error }).toEqual({ name, error: want });
        if (mode === 'extended') {
          // Extended reply headers echo the offset as sent (compared as the double both round to).
          for (const chunk of r.chunks) if (chunk.kind !== 'simple') expect(chunk.requestOffset).toBe(Number(offset));
        }
      }
      expect((await c.read(0, 4)).error).toBe(0);
      expect(f.errors).toEqual([]);
      expect(f.server.connectionCount).toBe(1);
    });
  }

  it('refuses a queued READ at 2^64-1 behind a 1 MiB READ (refused later, from the queue)', async () => {
    const f = await serve();
    const c = await open(f.port, 'extended');
    c.socket.cork();
    const first = c.read(0, MiB);
    const second = c.requestWide(Cmd.READ, U64_MAX, 512n);
    const third = c.requestWide(Cmd.FLUSH, U64_MAX, 0n);
    c.socket.uncork();
    expect((await first).error).toBe(0);
    expect((await second).error).toBe(EINVAL);
    expect((await third).error).toBe(EINVAL);
    expect((await c.read(0, 4)).error).toBe(0);
    expect(f.errors).toEqual([]);
  });
});

describe('a client that never reads', () => {
  it('cannot grow the server by pipelining NBD_OPT_LIST', async () => {
    const f = await serve();
    const before = liveArrayBufferBytes();
    const s = await deafSocket(f.port);
    // Each 16-byte LIST costs the server about 50 bytes of replies: 48 MiB sent would mean ~150 MiB held.
    const sent = await floodWhileAccepted(s, Buffer.concat(Array.from({ length: 4096 }, () => encodeOption(Opt.LIST))), 48 * MiB, 1500);
    await sleep(200);
    const grown = liveArrayBufferBytes() - before;
    expect(sent).toBeLessThan(48 * MiB);
    expect(grown).toBeLessThan(8 * MiB);
  });

  it('cannot grow a TLS-only server with options refused ERR_TLS_REQD', async () => {
    const f = await serve({ tls: { psk: new Map([['alice', Buffer.alloc(32, 7)]]), required: true } });
    const before = liveArrayBufferBytes();
    const s = await deafSocket(f.port);
    const sent = await floodWhileAccepted(s, Buffer.concat(Array.from({ length: 4096 }, () => encodeOption(Opt.STRUCTURED_REPLY))), 48 * MiB, 1500);
    await sleep(200);
    expect(sent).toBeLessThan(48 * MiB);
    expect(liveArrayBufferBytes() - before).toBeLessThan(8 * MiB);
  });

  it('holds no more READ data than maxQueuedReplyBytes (plus one request)', async () => {
    const f = await serve({ maxQueuedReplyBytes: MiB, size: 8 * MiB });
    const c = await open(f.port, 'simple');
    // Stop reading the replies; the kernel buffers fill first, then the server must stop.
    c.socket.pause();
    const before = liveArrayBufferBytes();
    const headers = Buffer.concat(Array.from({ length: 96 }, (_, i) => encodeWideRequestHeader(false, Cmd.READ, 0, BigInt(1000 + i), BigInt((i % 8) * MiB), BigInt(MiB))));
    c.socket.write(headers);
    await sleep(500);
    const grown = liveArrayBufferBytes() - before;
    // Unbounded, this is 96 MiB of replies queued in the socket.
    expect(grown).toBeLessThan(8 * MiB);
    expect(f.errors).toEqual([]);
  });

  it('cannot hold close() open: a stuck transmission client is dropped after closeTimeoutMs', async () => {
    const f = await serve({ closeTimeoutMs: 300, size: 8 * MiB });
    const c = await open(f.port, 'structured');
    c.socket.pause();
    c.socket.write(Buffer.concat(Array.from({ length: 64 }, (_, i) => encodeWideRequestHeader(false, Cmd.READ, 0, BigInt(i + 100), 0n, BigInt(MiB)))));
    await sleep(300);
    const t0 = Date.now();
    const result = await Promise.race([f.server.close().then(() => 'closed'), sleep(5000).then(() => 'stuck')]);
    expect(result).toBe('closed');
    // closeTimeoutMs (300) plus slack; the old 2 s linger after a flush would not make it.
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(f.server.connectionCount).toBe(0);
  });

  it('cannot hold close() open while negotiating', async () => {
    const f = await serve({ closeTimeoutMs: 300 });
    const s = await deafSocket(f.port);
    await floodWhileAccepted(s, Buffer.concat(Array.from({ length: 4096 }, () => encodeOption(Opt.LIST))), 32 * MiB, 1000);
    const result = await Promise.race([f.server.close().then(() => 'closed'), sleep(5000).then(() => 'stuck')]);
    expect(result).toBe('closed');
    expect(f.server.connectionCount).toBe(0);
  });
});

describe('shutdown during negotiation', () => {
  it('answers the next option with NBD_REP_ERR_SHUTDOWN, then disconnects', async () => {
    const f = await serve();
    const c = await RawClient.connect(f.port);
    clients.push(c);
    await c.start();
    expect((await c.option(encodeOption(Opt.STRUCTURED_REPLY))).at(-1)?.kind).toBe('ack');
    const closing = f.server.close();
    await sleep(20);
    expect((await c.option(encodeInfoOption(Opt.GO, ''))).at(-1)).toMatchObject({ kind: 'error', error: Rep.ERR_SHUTDOWN });
    await c.closed;
    await closing;
  });

  it('disconnects a silent negotiating client within the grace period', async () => {
    const f = await serve();
    const c = await RawClient.connect(f.port);
    clients.push(c);
    await c.start();
    const t0 = Date.now();
    await f.server.close();
    expect(Date.now() - t0).toBeLessThan(3000);
    await c.closed;
  });
});
