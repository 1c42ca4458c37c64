/**
 * Server-wide limits and shutdown policy: the connection limit, the idle timeout, draining
 * received requests on close(), and the plain socket read path (`fastSocketReads: false`).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import { sleep } from '../../helpers/peers.js';
import { serverScope, startServer, type FixtureOptions, type ServerFixture } from './fixture.js';
import { RawClient } from './raw-client.js';
import { GateDriver } from './test-drivers.js';

const scope = serverScope();

async function serve(options: FixtureOptions): Promise<ServerFixture & { socketPath: string | undefined }> {
  const f = await startServer(options);
  scope.fixture = f;
  return f;
}

async function open(target: number | string, mode: 'simple' | 'structured' = 'simple'): Promise<RawClient> {
  const c = await RawClient.connect(target);
  scope.clients.push(c);
  await c.start();
  await c.go('', { structured: mode === 'structured' });
  return c;
}

describe('NBD server limits', () => {
  it('closes connections past maxConnections at once and serves the others', async () => {
    const f = await serve({ maxConnections: 2 });
    const a = await open(f.port);
    const b = await open(f.port);
    const extra = await RawClient.connect(f.port);
    scope.clients.push(extra);
    await extra.closed;
    expect(f.server.connectionCount).toBe(2);
    expect((await a.read(0, 16)).error).toBe(0);
    expect((await b.read(0, 16)).error).toBe(0);
    // A slot frees when a client leaves.
    await a.disconnect();
    for (let i = 0; i < 100 && f.server.connectionCount > 1; i++) await sleep(10);
    expect(f.server.connectionCount).toBe(1);
    const next = await open(f.port);
    expect((await next.read(0, 16)).error).toBe(0);
  });

  it('disconnects a client idle past idleTimeoutMs, but not one that keeps working', async () => {
    const f = await serve({ idleTimeoutMs: 200 });
    const idle = await open(f.port);
    const busy = await open(f.port);
    const until = Date.now() + 600;
    while (Date.now() < until) {
      expect((await busy.read(0, 512)).error).toBe(0);
      await sleep(40);
    }
    await idle.closed;
    expect((await busy.read(0, 512)).error).toBe(0);
  });

  it('close() runs requests already received before closing, instead of refusing them', async () => {
    const gate = new GateDriver(new MemoryDriver({ size: 1 << 20 }));
    const f = await serve({ exports: { '': gate }, maxInFlight: 1 });
    const c = await open(f.port);
    const writes = [0, 1, 2, 3].map((i) => c.write(i * 4096, new Uint8Array(4096).fill(i + 1)));
    await gate.whenHeld(1);
    // One running, three queued behind maxInFlight.
    await sleep(20);
    const closing = f.server.close();
    let done = false;
    void Promise.all(writes).then(() => (done = true));
    for (let i = 0; i < 200 && !done; i++) {
      gate.release();
      await sleep(5);
    }
    expect((await Promise.all(writes)).map((r) => r.error)).toEqual([0, 0, 0, 0]);
    await closing;
    for (let i = 0; i < 4; i++) expect((await gate.child.read(i * 4096, 1))[0]).toBe(i + 1);
  });

  for (const fastSocketReads of [true, false]) {
    it(`keeps reading after bursts when maxQueuedReplyBytes is below the socket's own buffer (fastSocketReads ${fastSocketReads})`, async () => {
      // Node emits 'drain' only after a write crossed the socket's high-water mark (16 KiB): with a
      // smaller budget the server must not wait for a 'drain' that never comes.
      const f = await serve({ maxQueuedReplyBytes: 8192, fastSocketReads, unix: true });
      // A Unix socket: its writes can sit in Node's buffer below the high-water mark.
      const c = await open(f.socketPath!);
      for (const burst of [3, 7, 11]) {
        const replies = await Promise.all(Array.from({ length: burst }, (_, i) => c.read(i * 4096, 4096)));
        expect(replies.every((r) => r.error === 0)).toBe(true);
        const next = await Promise.race([c.read(0, 512), sleep(2000).then(() => 'no reply within 2 s' as const)]);
        expect(next).not.toBe('no reply within 2 s');
      }
    });
  }

  it('serves the same data with fastSocketReads off (Node reads each socket itself)', async () => {
    const f = await serve({ fastSocketReads: false });
    const c = await open(f.port, 'structured');
    const data = randomBytes(1 << 20);
    expect((await c.write(0, data)).error).toBe(0);
    const r = await c.read(0, 1 << 20);
    expect(r.error).toBe(0);
    expect(r.data.equals(data)).toBe(true);
  });
});
