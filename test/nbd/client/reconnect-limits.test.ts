/**
 * The bounds on reconnecting and replaying, against scripted servers that misbehave on purpose:
 * a connection lost between opening and adoption, a server that breaks the protocol on every
 * request, one that never answers (request timeout, close deadline), and listeners that throw.
 * Requests held while no connection is usable keep the deadline they had on the wire, an abort
 * takes them out at once (they are on no wire), and a request lost because the client is closing
 * fails with ESHUTDOWN, not EIO.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { Cmd, TransmissionFlag } from '../../../src/nbd/protocol/index.js';
import { eventually } from '../../helpers/eventually.js';
import { sleep } from '../../helpers/peers.js';
import { expectSameBytes, patternBytes } from '../../helpers/bytes.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';

let scripted: ScriptedServer | undefined;
let client: NbdClient | undefined;
afterEach(async () => {
  const c = client;
  client = undefined;
  await c?.close();
  await scripted?.close();
  scripted = undefined;
});

/** Resolves with the promise's outcome, or 'pending' when it has not settled within `ms`. */
async function outcomeWithin<T>(p: Promise<T>, ms: number): Promise<{ ok: T } | { error: unknown } | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  try {
    return await Promise.race([p.then((ok) => ({ ok }), (error: unknown) => ({ error })), late]);
  } finally {
    clearTimeout(timer);
  }
}


const MULTI = TransmissionFlag.SEND_FLUSH | TransmissionFlag.CAN_MULTI_CONN;

describe('reconnecting with several connections', () => {
  it('a connection that drops after opening, while another is still negotiating, is not adopted and gets reconnected', async () => {
    scripted = await startScriptedServer({
      structured: true,
      flags: MULTI,
      // Connections 1 and 2 are the initial pair (refused ones are not counted). In the round that
      // reopens both, connection 3 opens and is cut shortly after while connection 4's GO answer
      // is still held back.
      goDelay: (n) => (n === 4 ? 200 : 0),
      onTransmission: (conn, n) => {
        if (n === 3) setTimeout(() => conn.socket.destroy(), 30);
      },
    });
    client = await NbdClient.connect(scripted.uri, { connections: 2, reconnectDelay: 10_000, backoff: { initialDelay: 20, maxDelay: 50 } });
    expect(client.liveConnections).toBe(2);
    const c = client;
    // Refuse until both connections are known lost, so one reconnection round opens both at once.
    scripted.refuse = true;
    scripted.dropClients();
    expect(await eventually(() => c.liveConnections === 0, 1000)).toBe(true);
    await sleep(30);
    scripted.refuse = false;
    // The lost connection 3 is replaced by a fifth; adopting it would leave one connection for good.
    expect(await eventually(() => scripted!.connections >= 5 && client!.liveConnections === 2, 3000)).toBe(true);
    await client.write(0, patternBytes(4096, 3));
    expectSameBytes(await client.read(0, 4096), patternBytes(4096, 3));
  });
});

describe('reconnecting slots independently', () => {
  it('a handshake that stalls does not keep the other connection from coming back and serving held requests', async () => {
    scripted = await startScriptedServer({
      structured: true,
      flags: MULTI,
      // Connections 1 and 2 are the initial pair; of the two reopened together, the second to
      // arrive holds its GO answer far longer than reconnectDelay.
      goDelay: (n) => (n === 4 ? 4000 : 0),
    });
    client = await NbdClient.connect(scripted.uri, { connections: 2, reconnectDelay: 1500, backoff: { initialDelay: 20, maxDelay: 50 } });
    const c = client;
    await c.write(0, patternBytes(4096, 5));
    scripted.refuse = true;
    scripted.dropClients();
    expect(await eventually(() => c.liveConnections === 0, 1000)).toBe(true);
    const read = outcomeWithin(c.read(0, 4096), 3000);
    await sleep(30);
    scripted.refuse = false;
    const outcome = await read;
    expect(outcome).toHaveProperty('ok');
    expectSameBytes((outcome as { ok: Uint8Array }).ok, patternBytes(4096, 5));
    expect(c.liveConnections).toBe(1);
  });
});

describe('replay limits', () => {
  it('a server that breaks the protocol on every request: the request fails with EIO after replayLimit replays', async () => {
    scripted = await startScriptedServer({
      structured: true,
      // A reply with a bad magic names no request, so everything in flight is replayed.
      onRequest: (req, conn) => {
        if (req.type !== Cmd.READ) return false;
        conn.send(new Uint8Array(32).fill(0xee));
        return true;
      },
    });
    client = await NbdClient.connect(scripted.uri, { reconnectDelay: 10_000, replayLimit: 2, backoff: { initialDelay: 5, maxDelay: 5 } });
    const outcome = await outcomeWithin(client.read(0, 512), 3000);
    expect(outcome).toMatchObject({ error: { code: 'EIO', message: expect.stringMatching(/replayed 2 times/) } });
    expect(scripted.requests.filter((r) => r.type === Cmd.READ)).toHaveLength(3);
  });

  it('one server restart under 4 connections costs no request its replays: hops between connections dying in the same outage do not count', async () => {
    const { NbdServer } = await import('../../../src/nbd/server/index.js');
    const { MemoryDriver } = await import('../../../src/drivers/memory.js');
    const driver = new MemoryDriver({ size: 8 << 20 });
    let server = new NbdServer();
    server.addExport('', driver);
    const bound = await server.listen({ port: 0, host: '127.0.0.1' });
    if (typeof bound === 'string') throw new Error('expected a TCP address');
    const { port } = bound;
    const restart = async (): Promise<void> => {
      await server.destroy();
      await sleep(3);
      server = new NbdServer();
      server.addExport('', driver);
      await server.listen({ port, host: '127.0.0.1' });
    };
    try {
      client = await NbdClient.connect({ host: '127.0.0.1', port }, { connections: 4, reconnectDelay: 10_000, backoff: { initialDelay: 2 } });
      const c = client;
      expect(c.info.connections).toBe(4);
      const failures: string[] = [];
      for (let round = 0; round < 10; round++) {
        const requests = Array.from({ length: 16 }, (_, j) =>
          j % 2 === 1 ? c.write((j % 8) << 20, patternBytes(256 * 1024, round * 16 + j)) : c.read((j % 8) << 20, 256 * 1024),
        );
        await sleep(0);
        await restart();
        for (const r of await Promise.allSettled(requests)) if (r.status === 'rejected') failures.push(String((r.reason as Error).message));
        expect(await eventually(() => c.liveConnections === 4, 5000), `round ${round}: all 4 connections back`).toBe(true);
      }
      expect(failures).toEqual([]);
    } finally {
      await client?.close();
      client = undefined;
      await server.destroy();
      await driver.close();
    }
  });

  it('on a server that never answers, every request in flight fails with ETIMEDOUT about requestTimeout after its submission', async () => {
    scripted = await startScriptedServer({ structured: true, onRequest: (req) => req.type === Cmd.READ });
    client = await NbdClient.connect(scripted.uri, { requestTimeout: 150, reconnectDelay: 10_000, backoff: { initialDelay: 5, maxDelay: 5 } });
    const c = client;
    const started = Date.now();
    const reads = Array.from({ length: 8 }, (_, i) => c.read(i * 512, 512).then(() => 'ok', (e: { code: string }) => e.code));
    const outcome = await outcomeWithin(Promise.all(reads), 1000);
    // Replaying each request with a fresh clock would take about 8 × 150 ms for the last one.
    expect(outcome).toEqual({ ok: Array(8).fill('ETIMEDOUT') });
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('closing against a server that stopped answering', () => {
  it('close() gives up after closeTimeout: sockets are destroyed and what is left fails with ESHUTDOWN', async () => {
    scripted = await startScriptedServer({ structured: true, onRequest: (req) => req.type === Cmd.READ });
    client = await NbdClient.connect(scripted.uri, { closeTimeout: 100 });
    const read = outcomeWithin(client.read(0, 512), 3000);
    const c = client;
    client = undefined;
    const closed = await outcomeWithin(c.close(), 2000);
    expect(closed).toEqual({ ok: undefined });
    expect(await read).toMatchObject({ error: { code: 'ESHUTDOWN', message: expect.stringMatching(/close deadline/) } });
    expect(c.state).toBe('closed');
  });
});

describe('listeners that throw', () => {
  it('a throwing listener neither stops reconnection nor escapes as an uncaught error; it becomes a process warning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      scripted = await startScriptedServer({ structured: true });
      client = await NbdClient.connect(scripted.uri, { reconnectDelay: 10_000, backoff: { initialDelay: 10, maxDelay: 20 } });
      const c = client;
      // Registered first: a listener that throws keeps the ones after it from running.
      const lost = new Promise<void>((resolve) => c.once('disconnected', () => resolve()));
      for (const event of ['disconnected', 'reconnecting', 'reconnected'] as const) {
        c.on(event, () => {
          throw new Error(`listener of ${event} broke`);
        });
      }
      scripted.dropClients();
      await lost;
      expect(await eventually(() => c.liveConnections === 1, 3000)).toBe(true);
      expect(await eventually(() => warnings.some((w) => /reconnected/.test(w)), 1000)).toBe(true);
      expect(warnings.some((w) => /disconnected/.test(w))).toBe(true);
      expect(warnings.some((w) => /reconnecting/.test(w))).toBe(true);
      await client.write(0, patternBytes(512, 9));
      expectSameBytes(await client.read(0, 512), patternBytes(512, 9));
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('requests held for a reconnect', () => {
  it('a sent request keeps its requestTimeout while held, and its expiry does not drop the connection that comes back', async () => {
    let reads = 0;
    // The first READ is never answered; the ones after it are.
    scripted = await startScriptedServer({ structured: true, onRequest: (req) => req.type === Cmd.READ && ++reads === 1 });
    client = await NbdClient.connect(scripted.uri, { requestTimeout: 300, reconnectDelay: 5000, backoff: { initialDelay: 10, maxDelay: 20 } });
    const c = client;
    const drops: unknown[] = [];
    c.on('disconnected', (e) => drops.push(e));
    const started = Date.now();
    const stuck = c.read(0, 512);
    await eventually(() => scripted!.requests.some((r) => r.type === Cmd.READ), 1000);
    scripted.refuse = true;
    scripted.dropClients();
    // Held, not on any wire: it must still fail about 300 ms after it was sent, not at reconnectDelay.
    const outcome = await outcomeWithin(stuck, 1500);
    expect(outcome).toMatchObject({ error: { code: 'ETIMEDOUT' } });
    expect(Date.now() - started).toBeLessThan(1000);
    scripted.refuse = false;
    expect(await eventually(() => c.liveConnections === 1, 2000)).toBe(true);
    await sleep(400); // two sweeps of a connection's requestTimeout
    expect(drops).toHaveLength(1);
    expect((await outcomeWithin(c.read(0, 512), 1000)) as object).toHaveProperty('ok');
  });

  it('an abort takes a held request out at once with ECANCELED, and the buffer is left alone', async () => {
    scripted = await startScriptedServer({ structured: true });
    client = await NbdClient.connect(scripted.uri, { reconnectDelay: 5000, backoff: { initialDelay: 10, maxDelay: 20 } });
    const c = client;
    scripted.refuse = true;
    scripted.dropClients();
    expect(await eventually(() => c.liveConnections === 0, 1000)).toBe(true);
    const controller = new AbortController();
    const target = new Uint8Array(512).fill(7);
    const read = c.readInto(0, target, { signal: controller.signal });
    await sleep(20);
    controller.abort();
    expect(await outcomeWithin(read, 200)).toMatchObject({ error: { code: 'ECANCELED' } });
    scripted.refuse = false;
    expect(await eventually(() => c.liveConnections === 1, 2000)).toBe(true);
    await sleep(50);
    expect(target.every((b) => b === 7)).toBe(true);
    expect(scripted.requests.filter((r) => r.type === Cmd.READ)).toHaveLength(0);
  });

  it('a request lost because the client is closing fails with ESHUTDOWN', async () => {
    scripted = await startScriptedServer({ structured: true, onRequest: (req) => req.type === Cmd.READ });
    client = await NbdClient.connect(scripted.uri, { reconnectDelay: 5000, closeTimeout: 5000 });
    const c = client;
    client = undefined;
    const read = outcomeWithin(c.read(0, 512), 2000);
    await eventually(() => scripted!.requests.some((r) => r.type === Cmd.READ), 1000);
    const closing = c.close();
    scripted.dropClients();
    expect(await read).toMatchObject({ error: { code: 'ESHUTDOWN' } });
    await closing;
  });
});
