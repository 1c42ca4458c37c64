/**
 * Reconnection against real servers killed and restarted on the same Unix socket while requests
 * are in flight (qemu-nbd on a raw file, nbdkit's file plugin: both keep the data across the
 * restart), and the corner cases of holding and closing, with the scripted server.
 */
import { writeFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { Cmd, Err, encodeSimpleReply } from '../../../src/nbd/protocol/index.js';
import { requirePeers, sleep, tmpDir } from '../../helpers/peers.js';
import { expectSameBytes, patternBytes } from '../../helpers/bytes.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';
import { startNbdkit, startQemuNbd, type RunningServer } from './servers.js';

const peers = requirePeers('qemu-nbd', 'nbdkit');
const SIZE = 16 * 1024 * 1024;
const BLOCK = 64 * 1024;

let running: (RunningServer & { removeDir(): void }) | undefined;
let scripted: ScriptedServer | undefined;
let client: NbdClient | undefined;
afterEach(async () => {
  await client?.close();
  client = undefined;
  await running?.stop();
  running?.removeDir();
  running = undefined;
  await scripted?.close();
  scripted = undefined;
});

function rawFile(): { file: string; dir: ReturnType<typeof tmpDir> } {
  const dir = tmpDir('bgc-');
  const file = join(dir.path, 'disk.raw');
  writeFileSync(file, '');
  truncateSync(file, SIZE);
  return { file, dir };
}

const starters = {
  'qemu-nbd': async () => {
    const { file, dir } = rawFile();
    return startQemuNbd(file, [], dir);
  },
  'nbdkit file': async () => {
    const { file, dir } = rawFile();
    return startNbdkit(['file', `file=${file}`], dir);
  },
};

function recordEvents(c: NbdClient): string[] {
  const events: string[] = [];
  c.on('disconnected', () => events.push('disconnected'));
  c.on('reconnecting', ({ attempt }) => events.push(`reconnecting ${attempt}`));
  c.on('reconnected', ({ attempt }) => events.push(`reconnected ${attempt}`));
  return events;
}

describe.skipIf(!peers).each(Object.keys(starters) as (keyof typeof starters)[])('reconnect with %s', (name) => {
  it('requests in flight when the server is killed are replayed after it restarts and all complete', async () => {
    running = await starters[name]();
    client = await NbdClient.connect(running.uri, { reconnectDelay: 10_000, backoff: { initialDelay: 20, maxDelay: 100 } });
    const events = recordEvents(client);
    // Enough work that some of it is surely in flight when the server dies.
    const c = client;
    let settled = 0;
    let someDone: () => void = () => {};
    const sixteen = new Promise<void>((resolve) => (someDone = resolve));
    const writes = Array.from({ length: 128 }, (_, i) =>
      c.write(i * BLOCK, patternBytes(BLOCK, i)).then(() => {
        if (++settled === 16) someDone();
      }),
    );
    // Crash once the server has answered some writes, with the rest in flight.
    await sixteen;
    const inFlightAtCrash = 128 - settled;
    await running.crash();
    expect(inFlightAtCrash).toBeGreaterThan(0);
    await sleep(300);
    await running.restart();
    await Promise.all(writes);
    const reads = await Promise.all(Array.from({ length: 128 }, (_, i) => c.read(i * BLOCK, BLOCK)));
    reads.forEach((r, i) => expectSameBytes(r, patternBytes(BLOCK, i), `block ${i}`));
    expect(events[0]).toBe('disconnected');
    expect(events.at(-1)).toMatch(/^reconnected /);
    expect(events.filter((e) => e === 'disconnected')).toHaveLength(1);
    expect(events.filter((e) => e.startsWith('reconnecting')).length).toBeGreaterThanOrEqual(2);
  });

  it('with the server gone longer than reconnectDelay, held and new requests fail with EIO; it recovers later', async () => {
    running = await starters[name]();
    client = await NbdClient.connect(running.uri, { reconnectDelay: 300, backoff: { initialDelay: 20, maxDelay: 100 } });
    const events = recordEvents(client);
    await client.write(0, patternBytes(4096, 1));
    await running.crash();
    const started = Date.now();
    const held = client.write(4096, patternBytes(4096, 2));
    await expect(held).rejects.toMatchObject({ code: 'EIO', message: expect.stringMatching(/^NBD connection lost: nbd: write 4096\+4096/) });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    const fast = Date.now();
    await expect(client.read(0, 4096)).rejects.toMatchObject({ code: 'EIO' });
    expect(Date.now() - fast).toBeLessThan(100);
    const back = new Promise<void>((resolve) => client!.once('reconnected', () => resolve()));
    await running.restart();
    await back;
    expectSameBytes(await client.read(0, 4096), patternBytes(4096, 1));
    // The held write never reached the server.
    expectSameBytes(await client.read(4096, 4096), new Uint8Array(4096));
    expect(events[0]).toBe('disconnected');
  });

  it('with reconnectDelay 0 requests in flight fail at once with EIO', async () => {
    running = await starters[name]();
    client = await NbdClient.connect(running.uri);
    const c = client;
    const writes = Array.from({ length: 64 }, (_, i) => c.write(i * BLOCK, patternBytes(BLOCK, i)).then(() => 'ok', (e: { code: string }) => e.code));
    await running.crash();
    const outcomes = await Promise.all(writes);
    expect(outcomes.every((o) => o === 'ok' || o === 'EIO')).toBe(true);
    expect(outcomes).toContain('EIO');
    await expect(c.read(0, 1)).rejects.toMatchObject({ code: 'EIO', message: expect.stringMatching(/reconnectDelay is 0/) });
  });
});

describe.skipIf(!peers)('a server shutting down', () => {
  it('nbdkit on SIGTERM answers ESHUTDOWN: the client sends DISC, and replays the request once nbdkit is back', async () => {
    const { file, dir } = rawFile();
    running = await startNbdkit(['file', `file=${file}`], dir);
    const server = running;
    client = await NbdClient.connect(server.uri, { reconnectDelay: 10_000, backoff: { initialDelay: 20, maxDelay: 50 } });
    const events = recordEvents(client);
    await client.write(0, patternBytes(4096, 7));
    // nbdkit keeps idle connections open after SIGTERM and refuses new requests with ESHUTDOWN;
    // it exits once the client disconnected.
    const exited = server.terminate();
    await sleep(100);
    const read = client.read(0, 4096);
    await exited;
    await server.restart();
    expectSameBytes(await read, patternBytes(4096, 7));
    expect(events[0]).toBe('disconnected');
    expect(events.at(-1)).toMatch(/^reconnected/);
  });
});

describe('holding, closing and ESHUTDOWN (scripted server)', () => {
  it('close() while disconnected fails held requests with ESHUTDOWN at once and stops reconnecting', async () => {
    scripted = await startScriptedServer({ structured: true });
    client = await NbdClient.connect(scripted.uri, { reconnectDelay: 60_000, backoff: { initialDelay: 10, maxDelay: 10 } });
    let attempts = 0;
    client.on('reconnecting', () => attempts++);
    scripted.refuse = true;
    scripted.dropClients();
    const held = client.read(0, 512);
    await sleep(50);
    const started = Date.now();
    await client.close();
    await expect(held).rejects.toMatchObject({ code: 'ESHUTDOWN' });
    expect(Date.now() - started).toBeLessThan(1000);
    const after = attempts;
    await sleep(100);
    expect(attempts).toBe(after);
    client = undefined;
  });

  it('an ESHUTDOWN reply makes the client disconnect politely and replay the request on a new connection', async () => {
    let refused = false;
    scripted = await startScriptedServer({
      onRequest: (req, conn) => {
        if (refused || req.type !== Cmd.WRITE) return false;
        refused = true;
        conn.send(encodeSimpleReply(req, Err.ESHUTDOWN));
        return true;
      },
    });
    client = await NbdClient.connect(scripted.uri, { reconnectDelay: 5000, backoff: { initialDelay: 10 } });
    await client.write(0, patternBytes(512, 5));
    expectSameBytes(scripted.disk.subarray(0, 512), patternBytes(512, 5));
    const seen = scripted.requests.map((r) => `${r.connection}:${r.type}`);
    expect(seen).toEqual([`1:${Cmd.WRITE}`, `1:${Cmd.DISC}`, `2:${Cmd.WRITE}`]);
  });

  it('a server that only half-closes (ends its side) is noticed as a disconnect', async () => {
    scripted = await startScriptedServer({
      structured: true,
      onRequest: (req, conn) => {
        if (req.type !== Cmd.READ) return false;
        conn.socket.end();
        return true;
      },
    });
    client = await NbdClient.connect(scripted.uri);
    const lost = new Promise<string>((resolve) => client!.once('disconnected', ({ error }) => resolve(error.message)));
    await expect(client.read(0, 512)).rejects.toMatchObject({ code: 'EIO', message: expect.stringMatching(/^NBD connection lost/) });
    expect(await lost).toMatch(/server closed the connection/);
  });

  it('a failed initial connection rejects connect() with EIO and leaves nothing running', async () => {
    const dir = tmpDir('bgc-');
    try {
      await expect(NbdClient.connect({ path: join(dir.path, 'nothing.sock') })).rejects.toMatchObject({ code: 'EIO' });
    } finally {
      dir.remove();
    }
  });

  it('connectTimeout bounds a server that accepts but never negotiates; an aborted signal cancels', async () => {
    const { createServer } = await import('node:net');
    const dir = tmpDir('bgc-');
    const path = join(dir.path, 'mute.sock');
    const sockets: import('node:net').Socket[] = [];
    const mute = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => mute.listen(path, r));
    try {
      await expect(NbdClient.connect({ path }, { connectTimeout: 100 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
      const ac = new AbortController();
      const pending = NbdClient.connect({ path }, { signal: ac.signal });
      ac.abort();
      await expect(pending).rejects.toMatchObject({ code: 'ECANCELED' });
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => mute.close(() => r()));
      dir.remove();
    }
  });
});
