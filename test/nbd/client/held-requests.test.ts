/**
 * Requests held while no connection is usable (between a drop and the reconnect): they keep the
 * deadline they had on the wire, an abort takes them out at once (they are on no wire), and a
 * request lost because the client is closing fails with ESHUTDOWN, not EIO.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { Cmd } from '../../../src/nbd/protocol/index.js';
import { eventually } from '../../helpers/eventually.js';
import { sleep } from '../../helpers/peers.js';
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
