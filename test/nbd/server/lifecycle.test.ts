/**
 * Server lifecycle and concurrency: out-of-order completion, backpressure, draining close, export
 * removal, DISC, many clients, events, statistics and diagnostics channels.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { BufferPool } from '../../../src/buffers/pool.js';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import { FilterDriver } from '../../../src/filter.js';
import type { BlockExtent, BlockLimits } from '../../../src/types.js';
import { Cmd, encodeInfoOption, encodeRequestHeader, Err, Opt, Rep } from '../../../src/nbd/protocol/index.js';
import { NBD_SERVER_CHANNELS, NbdServer, type NbdConnectionInfo } from '../../../src/nbd/server/index.js';
import { sleep } from '../../helpers/peers.js';
import { serverScope, startServer } from './fixture.js';
import { RawClient } from './raw-client.js';
import { GateDriver } from './test-drivers.js';
import { pskCipherList } from '../../../src/nbd/tls-common.js';

const scope = serverScope();

async function connect(name = '', mode: 'simple' | 'structured' = 'simple'): Promise<RawClient> {
  const c = await RawClient.connect(scope.fixture!.port);
  scope.clients.push(c);
  await c.start();
  await c.go(name, { structured: mode === 'structured' });
  return c;
}

describe('NBD server lifecycle', () => {
  it('answers out of order when the driver completes out of order', async () => {
    const gate = new GateDriver(new MemoryDriver({ size: 1 << 20 }));
    scope.fixture = await startServer({ exports: { '': gate } });
    const c = await connect();
    const order: number[] = [];
    const replies = [0, 4096, 8192].map((off) => c.read(off, 512).then((r) => order.push(off) && r));
    await gate.whenHeld(3);
    gate.release(8192);
    await sleep(20);
    gate.release(0);
    await sleep(20);
    gate.release(4096);
    await Promise.all(replies);
    expect(order).toEqual([8192, 0, 4096]);
  });

  it('stops reading a connection at maxInFlight and resumes as replies go out', async () => {
    const gate = new GateDriver(new MemoryDriver({ size: 1 << 20 }));
    scope.fixture = await startServer({ exports: { '': gate }, maxInFlight: 4 });
    const c = await connect();
    const all = Array.from({ length: 40 }, (_, i) => c.read(i * 512, 512));
    await gate.whenHeld(4);
    await sleep(50);
    expect(gate.held).toBe(4);
    while (gate.held > 0 || c.outstanding > 0) {
      gate.release();
      await sleep(5);
    }
    const done = await Promise.all(all);
    expect(done.every((r) => r.error === 0)).toBe(true);
    expect(gate.maxRunning).toBe(4);
  });

  it('bounds the bytes held for a connection: big READs wait their turn', async () => {
    const gate = new GateDriver(new MemoryDriver({ size: 64 << 20 }));
    scope.fixture = await startServer({ exports: { '': gate }, maxQueuedReplyBytes: 4 << 20 });
    const c = await connect();
    const all = Array.from({ length: 8 }, (_, i) => c.read(i << 20, 1 << 20));
    await gate.whenHeld(4);
    await sleep(50);
    expect(gate.held).toBe(4);
    while (c.outstanding > 0) {
      gate.release();
      await sleep(5);
    }
    expect((await Promise.all(all)).every((r) => r.error === 0)).toBe(true);
  });

  it('stops reading a client that does not read its replies, and catches up when it does', async () => {
    scope.fixture = await startServer({ exports: { '': new MemoryDriver({ size: 1 << 20 }) } });
    const c = await connect();
    c.socket.pause();
    const header = encodeRequestHeader(false, Cmd.CACHE, 0, 0, 1, 0, 512);
    const burst = Buffer.alloc(header.length * 10_000);
    for (let i = 0; i < 10_000; i++) header.copy(burst, i * header.length);
    // Kernel buffers on loopback hold megabytes of replies; keep sending until the server has to
    // stop reading (the client's own queue then grows), or give up after 3 million requests.
    let sent = 0;
    while (sent < 3_000_000 && c.socket.writableLength < 4 << 20) {
      c.socket.write(burst);
      sent += 10_000;
      await sleep(5);
    }
    expect(c.socket.writableLength).toBeGreaterThanOrEqual(4 << 20);
    await sleep(100);
    const stuck = c.socket.writableLength;
    await sleep(200);
    expect(c.socket.writableLength).toBe(stuck);
    // Reading the replies lets the server go on; every request gets its reply.
    let replyBytes = 0;
    c.socket.removeAllListeners('data');
    c.socket.on('data', (b: Buffer) => (replyBytes += b.length));
    c.socket.resume();
    for (let i = 0; i < 400 && replyBytes < sent * 16; i++) await sleep(25);
    expect(replyBytes).toBe(sent * 16);
    expect(c.socket.writableLength).toBe(0);
  });

  it('close() lets in-flight requests finish, then closes; new scope.clients are refused', async () => {
    const gate = new GateDriver(new MemoryDriver({ size: 1 << 20 }));
    scope.fixture = await startServer({ exports: { '': gate } });
    const c = await connect();
    const pending = c.write(0, new Uint8Array(512).fill(3));
    await gate.whenHeld(1);
    let closed = false;
    const closing = scope.fixture.server.close().then(() => (closed = true));
    await sleep(50);
    expect(closed).toBe(false);
    await expect(RawClient.connect(scope.fixture.port)).rejects.toThrow();
    gate.release();
    expect((await pending).error).toBe(0);
    await closing;
    await c.closed;
    expect(scope.fixture.server.connectionCount).toBe(0);
    expect([...(await gate.child.read(0, 4))]).toEqual([3, 3, 3, 3]);
  });

  it("a later close()'s signal bounds a close already under way (and an aborted one drops at once)", async () => {
    for (const early of [false, true]) {
      const gate = new GateDriver(new MemoryDriver({ size: 1 << 20 }));
      scope.fixture = await startServer({ exports: { '': gate }, closeTimeoutMs: 30_000 });
      const c = await connect();
      void c.write(0, new Uint8Array(512).fill(3));
      await gate.whenHeld(1);
      const first = scope.fixture.server.close(); // would wait for the held write
      const abort = new AbortController();
      if (early) abort.abort();
      const second = scope.fixture.server.close({ signal: abort.signal });
      setTimeout(() => abort.abort(), 50);
      const settled = await Promise.race([Promise.all([first, second]).then(() => 'closed'), sleep(5000).then(() => 'still closing')]);
      expect(settled, early ? 'signal already aborted' : 'signal aborted later').toBe('closed');
      expect(scope.fixture.server.connectionCount).toBe(0);
      gate.release();
      await scope.fixture.close();
      scope.fixture = undefined;
    }
  });

  it('close() disconnects scope.clients still negotiating', async () => {
    scope.fixture = await startServer();
    const c = await RawClient.connect(scope.fixture.port);
    scope.clients.push(c);
    await c.start();
    await scope.fixture.server.close();
    await c.closed;
  });

  it('removes exports safely (refused while in use) or hard (scope.clients dropped), leaving the driver open', async () => {
    const driver = new MemoryDriver({ size: 65536 });
    scope.fixture = await startServer({ exports: { a: driver, b: new MemoryDriver({ size: 4096 }) } });
    const c = await connect('a');
    expect(() => scope.fixture!.server.removeExport('a')).toThrow(expect.objectContaining({ code: 'EPERM' }));
    expect((await c.read(0, 16)).error).toBe(0);
    scope.fixture.server.removeExport('b');
    expect(scope.fixture.server.hasExport('b')).toBe(false);
    scope.fixture.server.removeExport('a', { mode: 'hard' });
    await c.closed;
    expect(driver.state).toBe('open');
    const d = await RawClient.connect(scope.fixture.port);
    scope.clients.push(d);
    await d.start();
    expect((await d.option(encodeInfoOption(Opt.GO, 'a'))).at(-1)).toMatchObject({ kind: 'error', error: Rep.ERR_UNKNOWN });
    scope.fixture.server.addExport('a', driver);
    await d.go('a');
    expect((await d.read(0, 16)).error).toBe(0);
  });

  it('DISC: in-flight requests are answered, then the server closes the connection', async () => {
    const gate = new GateDriver(new MemoryDriver({ size: 65536 }));
    scope.fixture = await startServer({ exports: { '': gate } });
    const c = await connect();
    const write = c.write(0, new Uint8Array(16).fill(1));
    await gate.whenHeld(1);
    void c.request(Cmd.DISC, 0, 0);
    await sleep(30);
    gate.release();
    expect((await write).error).toBe(0);
    await c.closed;
  });

  it('a client that ends its side after its requests still gets every reply, over plain TCP and over TLS', async () => {
    const psk = Buffer.alloc(32, 7);
    const gate = new GateDriver(new MemoryDriver({ size: 1 << 20 }));
    scope.fixture = await startServer({ exports: { '': gate }, tls: { psk: new Map([['alice', psk]]), required: false } });
    for (const secure of [false, true]) {
      const plain = await RawClient.connect(scope.fixture.port);
      scope.clients.push(plain);
      await plain.start();
      const c = secure ? await plain.startTls({ pskCallback: () => ({ psk, identity: 'alice' }), ciphers: pskCipherList(), checkServerIdentity: () => undefined }) : plain;
      if (secure) scope.clients.push(c);
      await c.go('');
      const data = new Uint8Array(65536).fill(secure ? 2 : 1);
      const write = c.write(131072, data);
      const reads = [c.read(131072 + 65536, 65536), c.read(65536, 4096)];
      await gate.whenHeld(3);
      c.socket.end();
      await sleep(30);
      gate.release();
      expect((await write).error).toBe(0);
      const [first, second] = await Promise.all(reads);
      expect(first.error).toBe(0);
      expect(second.error).toBe(0);
      expect(second.data).toEqual(Buffer.alloc(4096));
      await c.closed;
    }
  });

  it("a driver closed under a running server fails requests with EIO, not NBD_ESHUTDOWN (the server is not going away), and the connection stays", async () => {
    const driver = new MemoryDriver({ size: 65536 });
    scope.fixture = await startServer({ exports: { '': driver } });
    const c = await connect('', 'structured');
    expect((await c.write(0, new Uint8Array(512).fill(1))).error).toBe(0);
    await driver.close();
    expect((await c.write(0, new Uint8Array(512).fill(2))).error).toBe(Err.EIO);
    expect((await c.read(0, 512)).error).toBe(Err.EIO);
    expect(c.socket.destroyed).toBe(false);
  });

  it('serves many scope.clients at once, each on its own region', async () => {
    scope.fixture = await startServer({ exports: { '': new MemoryDriver({ size: 1 << 20 }) } });
    const many = await Promise.all(Array.from({ length: 8 }, () => connect('', 'structured')));
    await Promise.all(many.map((c, i) => c.write(i * 65536, new Uint8Array(65536).fill(i + 1))));
    const back = await Promise.all(many.map((c, i) => c.read(((i + 3) % 8) * 65536, 65536)));
    back.forEach((r, i) => expect(r.data.every((b) => b === ((i + 3) % 8) + 1)).toBe(true));
  });

  it('a client sending garbage is dropped without disturbing another one mid-stream', async () => {
    scope.fixture = await startServer();
    const good = await connect('', 'structured');
    const bad = await connect();
    const errors: unknown[] = [];
    scope.fixture.server.on('error', (e) => errors.push(e));
    const writes = Array.from({ length: 50 }, (_, i) => good.write(i * 4096, new Uint8Array(4096).fill(i)));
    bad.socket.write(Buffer.alloc(64, 0xee));
    await bad.closed;
    expect((await Promise.all(writes)).every((r) => r.error === 0)).toBe(true);
    expect((await good.read(49 * 4096, 4096)).data.every((b) => b === 49)).toBe(true);
    expect(errors).toEqual([expect.objectContaining({ reason: 'bad-magic' })]);
  });

  it('emits connection, negotiated and disconnect events, and publishes diagnostics', async () => {
    scope.fixture = await startServer();
    const seen: string[] = [];
    const published: string[] = [];
    const handlers = Object.entries(NBD_SERVER_CHANNELS).map(([k, name]) => {
      const h = (): void => void published.push(k);
      subscribe(name, h);
      return [name, h] as const;
    });
    try {
      let info: NbdConnectionInfo | undefined;
      scope.fixture.server.on('connection', () => seen.push('connection'));
      scope.fixture.server.on('negotiated', (i) => {
        info = i;
        seen.push('negotiated');
      });
      const disconnected = new Promise<void>((resolve) =>
        scope.fixture!.server.on('disconnect', () => {
          seen.push('disconnect');
          resolve();
        }),
      );
      const c = await connect();
      await c.read(0, 4);
      await c.disconnect();
      await disconnected;
      expect(seen).toEqual(['connection', 'negotiated', 'disconnect']);
      expect(info).toMatchObject({ export: '', remoteAddress: '127.0.0.1', tls: false });
      expect(published).toEqual(['connection', 'negotiated', 'request', 'disconnect']);
    } finally {
      for (const [name, h] of handlers) unsubscribe(name, h);
    }
  });

  it('counts requests and bytes per export', async () => {
    scope.fixture = await startServer({ exports: { x: new MemoryDriver({ size: 65536 }) } });
    const c = await connect('x');
    await c.write(0, new Uint8Array(1000));
    await c.read(0, 300);
    await c.read(65536, 1);
    await c.request(Cmd.FLUSH, 0, 0);
    expect(scope.fixture.server.exportStats('x')).toMatchObject({
      requests: 4,
      reads: 2,
      writes: 1,
      flushes: 1,
      errors: 1,
      bytesRead: 300,
      bytesWritten: 1000,
    });
    expect(scope.fixture.server.exports()).toEqual([expect.objectContaining({ name: 'x', clients: 1, size: 65536, readOnly: false })]);
  });

  it('counts requests refused by a shutdown like any other request', async () => {
    const gate = new GateDriver(new MemoryDriver({ size: 1 << 20 }));
    scope.fixture = await startServer({ exports: { '': gate }, maxInFlight: 1, closeTimeoutMs: 100 });
    const c = await connect();
    // One write, so the server parses all three at once and queues two (maxInFlight 1).
    c.socket.cork();
    const replies = [c.read(0, 4096), c.read(4096, 4096), c.read(8192, 4096)];
    c.socket.uncork();
    await gate.whenHeld(1);
    const closing = scope.fixture.server.close();
    // closeTimeoutMs later the queued two are refused with ESHUTDOWN; the running one completes.
    expect((await Promise.all(replies.slice(1))).map((r) => r.error)).toEqual([108, 108]);
    gate.release();
    expect((await replies[0]).error).toBe(0);
    await closing;
    expect(scope.fixture.server.exportStats('')).toMatchObject({ requests: 3, reads: 3, errors: 2 });
  });

  it('gives the pooled payload of every refused WRITE back to the pool', async () => {
    const outstanding = new Set<ArrayBufferLike>();
    const take = BufferPool.prototype.take;
    const give = BufferPool.prototype.give;
    const takeSpy = vi.spyOn(BufferPool.prototype, 'take').mockImplementation(function (this: BufferPool, length: number) {
      const buf = take.call(this, length);
      if (length >= 64 * 1024) outstanding.add(buf.buffer);
      return buf;
    });
    const giveSpy = vi.spyOn(BufferPool.prototype, 'give').mockImplementation(function (this: BufferPool, view: Uint8Array) {
      outstanding.delete(view.buffer);
      give.call(this, view);
    });
    try {
      scope.fixture = await startServer({
        exports: { ro: new MemoryDriver({ size: 1 << 20 }), rw: new MemoryDriver({ size: 1 << 20 }) },
      });
      scope.fixture.server.removeExport('ro');
      scope.fixture.server.addExport('ro', new MemoryDriver({ size: 1 << 20 }), { readOnly: true });
      const payload = new Uint8Array(128 * 1024).fill(1);
      for (const [name, offset, error] of [['ro', 0, 1], ['rw', 1 << 20, 28]] as const) {
        const c = await connect(name);
        for (let i = 0; i < 5; i++) expect((await c.write(offset, payload)).error).toBe(error); // EPERM, ENOSPC
      }
      expect(outstanding.size).toBe(0);
    } finally {
      takeSpy.mockRestore();
      giveSpy.mockRestore();
    }
  });

  it('close() lets go of the idle buffers kept for reuse (up to 2 × maxPayload)', async () => {
    const pools: BufferPool[] = [];
    const take = BufferPool.prototype.take;
    const takeSpy = vi.spyOn(BufferPool.prototype, 'take').mockImplementation(function (this: BufferPool, length: number) {
      if (!pools.includes(this)) pools.push(this);
      return take.call(this, length);
    });
    try {
      scope.fixture = await startServer({ exports: { rw: new MemoryDriver({ size: 4 << 20 }) } });
      const c = await connect('rw');
      const payload = new Uint8Array(1 << 20).fill(3);
      for (let i = 0; i < 4; i++) expect((await c.write(i << 20, payload)).error).toBe(0);
      expect(pools.some((p) => p.idleBytes > 0), 'the payloads went back to the pool').toBe(true);
      c.socket.destroy();
      await scope.fixture.server.close();
      expect(pools.map((p) => p.idleBytes)).toEqual(pools.map(() => 0));
    } finally {
      takeSpy.mockRestore();
    }
  });

  it('a sparse READ on a driver that reports zeros at a finer grain than its minimum block size is read in aligned pieces', async () => {
    /** Minimum block 4096; block status in 512-byte runs (the contract allows any grain). */
    class FineGrained extends FilterDriver {
      override get limits(): BlockLimits {
        return { ...super.limits, minBlockSize: 4096 };
      }
      protected override async _blockStatus(offset: number, length: number): Promise<BlockExtent[]> {
        const data = await this.child.read(offset, length);
        const out: { offset: number; length: number; zero: boolean; allocated: boolean }[] = [];
        for (let p = 0; p < length; p += 512) {
          const zero = data.subarray(p, p + 512).every((b) => b === 0);
          const last = out.at(-1);
          if (last !== undefined && last.zero === zero) last.length += 512;
          else out.push({ offset: offset + p, length: 512, zero, allocated: !zero });
        }
        return out;
      }
    }
    const mem = new MemoryDriver({ size: 1 << 20 });
    await mem.write(0, new Uint8Array(512).fill(0xab)); // block 0 holds data in its first 512 bytes only
    scope.fixture = await startServer({ exports: { '': new FineGrained(mem) } });
    const c = await connect('', 'structured');
    const r = await c.read(0, 65536);
    expect(r.error).toBe(0);
    expect(r.data.subarray(0, 512).every((b) => b === 0xab)).toBe(true);
    expect(r.data.subarray(512).every((b) => b === 0)).toBe(true);
  });

  it('takes READs and WRITEs up to the payload limit from a client that asked for no block sizes, even when the driver accepts less at a time', async () => {
    class SmallMax extends FilterDriver {
      override get limits(): BlockLimits {
        return { ...super.limits, maxBlockSize: 65536, maxTransfer: 65536 };
      }
    }
    scope.fixture = await startServer({ exports: { '': new SmallMax(new MemoryDriver({ size: 1 << 20 })) } });
    for (const mode of ['simple', 'structured'] as const) {
      const c = await connect('', mode); // GO without info requests, as the kernel sends it
      const data = Buffer.alloc(300 * 1024);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (mode === 'simple' ? 1 : 2)) & 0xff;
      expect((await c.write(4096, data)).error).toBe(0);
      const r = await c.read(4096, data.length);
      expect(r.error).toBe(0);
      expect(r.data.equals(data)).toBe(true);
    }
  });

  it('binds to loopback by default', async () => {
    const server = new NbdServer();
    try {
      server.addExport('', new MemoryDriver({ size: 4096 }));
      const addr = (await server.listen({ port: 0 })) as AddressInfo;
      expect(addr.address).toBe('127.0.0.1');
      const c = await RawClient.connect(addr.port);
      scope.clients.push(c);
      await c.start();
      await c.go('');
      expect((await c.read(0, 8)).error).toBe(0);
    } finally {
      await server.destroy();
    }
  });

  it('close() while listen() is still binding: listen() rejects with ESHUTDOWN and nothing stays bound', async () => {
    const server = new NbdServer();
    server.addExport('', new MemoryDriver({ size: 4096 }));
    // A port that close() has no way to know about yet: find a free one, then race for it.
    const probe = createServer();
    const port = await new Promise<number>((resolve) => probe.listen(0, '127.0.0.1', () => resolve((probe.address() as AddressInfo).port)));
    await new Promise((resolve) => probe.close(resolve));
    const listening = server.listen({ port });
    await server.close();
    await expect(listening).rejects.toMatchObject({ code: 'ESHUTDOWN' });
    // The port is free again: a fresh listener can bind it.
    const again = createServer();
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.listen(port, '127.0.0.1', () => resolve());
    });
    await new Promise((resolve) => again.close(resolve));
  });

  it('serves a socket accepted elsewhere (handleSocket), with ordinary reads', async () => {
    const server = new NbdServer();
    server.addExport('', new MemoryDriver({ size: 1 << 20 }));
    const plain = createServer((socket) => server.handleSocket(socket));
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', () => resolve()));
    try {
      const c = await RawClient.connect((plain.address() as AddressInfo).port);
      scope.clients.push(c);
      await c.start();
      await c.go('');
      const data = new Uint8Array(300_000).map((_, i) => i % 251);
      expect((await c.write(5, data)).error).toBe(0);
      expect(Buffer.from((await c.read(5, data.length)).data).equals(Buffer.from(data))).toBe(true);
    } finally {
      await server.destroy();
      await new Promise<void>((resolve) => plain.close(() => resolve()));
    }
  });

  it('rejects bad exports and options up front', async () => {
    const server = new NbdServer();
    expect(() => server.addExport('a\0b', new MemoryDriver({ size: 1 }))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    server.addExport('a', new MemoryDriver({ size: 1 }));
    expect(() => server.addExport('a', new MemoryDriver({ size: 1 }))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => server.removeExport('zz')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    // A size that is not a multiple of the driver's minimum block size would be refused by scope.clients.
    class Aligned4k extends FilterDriver {
      override get limits(): BlockLimits {
        return { ...super.limits, minBlockSize: 4096 };
      }
    }
    expect(() => server.addExport('odd', new Aligned4k(new MemoryDriver({ size: 3 * 4096 + 512 })))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    server.addExport('even', new Aligned4k(new MemoryDriver({ size: 3 * 4096 })));
    expect(() => new NbdServer({ maxPayload: 100 })).toThrow(RangeError);
    expect(() => new NbdServer({ closeTimeoutMs: -1 })).toThrow(RangeError);
    // Node fires a timer longer than 2^31 − 1 ms at once, and setTimeout(Infinity) on a socket throws.
    for (const key of ['closeTimeoutMs', 'negotiationTimeoutMs', 'idleTimeoutMs'] as const) {
      expect(() => new NbdServer({ [key]: 2 ** 31 }), key).toThrow(RangeError);
      expect(() => new NbdServer({ [key]: Infinity }), key).toThrow(RangeError);
      // A string or boolean passes a comparison; '100' as idleTimeoutMs took the process down at the first client.
      for (const bad of ['100', true, [5]]) expect(() => new NbdServer({ [key]: bad as unknown as number }), `${key}: ${String(bad)}`).toThrow(TypeError);
    }
    for (const key of ['sparseReads', 'fastSocketReads', 'allowList'] as const) {
      expect(() => new NbdServer({ [key]: 'false' as unknown as boolean }), key).toThrow(TypeError);
    }
    expect(() => new NbdServer({ host: 5 as unknown as string })).toThrow(TypeError);
    expect(() => new NbdServer({ tls: {} })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    // Verifying client certificates against no CA would mean Node's public store: refused.
    expect(() => new NbdServer({ tls: { key: 'k', cert: 'c', verifyClient: true } })).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/verifyClient needs the CA/) }));
    await server.close();
    await expect(server.listen({ port: 0 })).rejects.toMatchObject({ code: 'ESHUTDOWN' });
  });
});
