/**
 * Model-based test of reconnection: random sequences of writes, reads, flushes, bursts of
 * concurrent writes cut by a server crash, and outages longer than `reconnectDelay`, run against
 * the real client over a Unix socket and a byte-array model. A burst that spans a crash must
 * complete as if nothing happened, in submission order; requests issued during a long outage
 * fail with EIO and change nothing; the client serves again once the server is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { Cmd } from '../../../src/nbd/protocol/index.js';

import { expectSameBytes, patternBytes } from '../../helpers/bytes.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';

const SIZE = 256 * 1024;
const HOLD_MS = 200;

interface Model {
  disk: Uint8Array;
}
interface Real {
  client: NbdClient;
  server: ScriptedServer;
  events: string[];
}

const range = fc
  .record({ offset: fc.nat(SIZE - 1), length: fc.integer({ min: 1, max: 16384 }) })
  .map(({ offset, length }) => ({ offset, length: Math.min(length, SIZE - offset) }));

class WriteCmd implements fc.AsyncCommand<Model, Real> {
  constructor(readonly r: { offset: number; length: number }, readonly seed: number) {}
  check = (): boolean => true;
  async run(m: Model, real: Real): Promise<void> {
    const data = patternBytes(this.r.length, this.seed);
    await real.client.write(this.r.offset, data);
    m.disk.set(data, this.r.offset);
  }
  toString = (): string => `write(${this.r.offset}+${this.r.length}#${this.seed})`;
}

class ReadCmd implements fc.AsyncCommand<Model, Real> {
  constructor(readonly r: { offset: number; length: number }) {}
  check = (): boolean => true;
  async run(m: Model, real: Real): Promise<void> {
    expectSameBytes(await real.client.read(this.r.offset, this.r.length), m.disk.subarray(this.r.offset, this.r.offset + this.r.length));
  }
  toString = (): string => `read(${this.r.offset}+${this.r.length})`;
}

class FlushCmd implements fc.AsyncCommand<Model, Real> {
  check = (): boolean => true;
  async run(_m: Model, real: Real): Promise<void> {
    await real.client.flush();
  }
  toString = (): string => 'flush';
}

/** Concurrent writes and reads; the server crashes when the `cut`-th request of the burst arrives. */
class CrashDuringBurstCmd implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly writes: { offset: number; length: number; seed: number }[],
    readonly cut: number,
  ) {}
  check = (): boolean => true;
  async run(m: Model, real: Real): Promise<void> {
    const { server, client } = real;
    const before = server.requests.length;
    const connectionsBefore = server.connections;
    let seen = 0;
    let crashed = false;
    const original = server.requests.push.bind(server.requests);
    // Crash as the cut-th request of the burst arrives: earlier ones were executed and maybe
    // answered, the cut-th and later ones were not.
    server.requests.push = (...items) => {
      const n = original(...items);
      if (!crashed && items.some((r) => r.type === Cmd.WRITE) && ++seen === this.cut) {
        crashed = true;
        server.dropClients();
        throw new Error('crash');
      }
      return n;
    };
    try {
      const done = this.writes.map((w) => client.write(w.offset, patternBytes(w.length, w.seed)));
      await Promise.all(done);
    } finally {
      server.requests.push = original;
    }
    for (const w of this.writes) m.disk.set(patternBytes(w.length, w.seed), w.offset);
    expect(crashed).toBe(true);
    expect(server.connections).toBeGreaterThan(connectionsBefore);
    // Replays went out in submission order on the new connection.
    const replayed = server.requests.slice(before).filter((r) => r.connection > connectionsBefore && r.type === Cmd.WRITE);
    const order = replayed.map((r) => this.writes.findIndex((w) => w.offset === r.offset && w.length === r.length));
    expect(order).toEqual([...order].sort((a, b) => a - b));
  }
  toString = (): string => `crashDuringBurst(${this.writes.length} writes, cut ${this.cut})`;
}

/** The server stays down longer than reconnectDelay: requests fail with EIO and change nothing. */
class OutageCmd implements fc.AsyncCommand<Model, Real> {
  constructor(readonly r: { offset: number; length: number }, readonly seed: number) {}
  check = (): boolean => true;
  async run(m: Model, real: Real): Promise<void> {
    const { server, client } = real;
    server.refuse = true;
    server.dropClients();
    const reconnected = new Promise<void>((resolve) => client.once('reconnected', () => resolve()));
    const started = Date.now();
    await expect(client.write(this.r.offset, patternBytes(this.r.length, this.seed))).rejects.toMatchObject({
      code: 'EIO',
      message: expect.stringMatching(/^NBD connection lost/),
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(HOLD_MS - 50);
    // After the hold window new requests fail at once.
    await expect(client.read(0, 1)).rejects.toMatchObject({ code: 'EIO' });
    server.refuse = false;
    await reconnected;
    expectSameBytes(await client.read(this.r.offset, this.r.length), m.disk.subarray(this.r.offset, this.r.offset + this.r.length));
  }
  toString = (): string => `outage(write ${this.r.offset}+${this.r.length})`;
}

const commands = [
  fc.tuple(range, fc.nat()).map(([r, seed]) => new WriteCmd(r, seed)),
  range.map((r) => new ReadCmd(r)),
  fc.constant(new FlushCmd()),
  fc
    .array(fc.tuple(range, fc.nat()), { minLength: 1, maxLength: 24 })
    .chain((ws) =>
      fc.tuple(fc.constant(ws.map(([r, seed]) => ({ ...r, seed }))), fc.integer({ min: 1, max: ws.length })),
    )
    .map(([ws, cut]) => new CrashDuringBurstCmd(ws, cut)),
  fc.tuple(range, fc.nat()).map(([r, seed]) => new OutageCmd(r, seed)),
];

describe('reconnection model', () => {
  let server: ScriptedServer;
  beforeAll(async () => {
    server = await startScriptedServer({ size: SIZE, structured: true });
  });
  afterAll(async () => server.close());

  it('bursts cut by crashes complete in submission order; long outages fail cleanly; the client recovers', async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 12 }), async (cmds) => {
        server.disk.fill(0);
        server.refuse = false;
        const client = await NbdClient.connect(server.uri, { reconnectDelay: HOLD_MS, backoff: { initialDelay: 10, maxDelay: 40 } });
        const events: string[] = [];
        client.on('disconnected', () => events.push('disconnected'));
        client.on('reconnected', () => events.push('reconnected'));
        try {
          await fc.asyncModelRun(() => ({ model: { disk: new Uint8Array(SIZE) }, real: { client, server, events } }), cmds);
          // Every outage was announced once and healed once.
          for (let i = 0; i < events.length; i++) expect(events[i]).toBe(i % 2 === 0 ? 'disconnected' : 'reconnected');
        } finally {
          server.refuse = false;
          await client.close();
        }
      }),
      { numRuns: 20 },
    );
  });
});

