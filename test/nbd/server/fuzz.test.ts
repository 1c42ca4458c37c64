/**
 * Hostile input over loopback: fast-check generates handshakes and transmission streams — valid,
 * truncated, corrupted, with absurd lengths — and throws them at one server while a well-behaved
 * client keeps writing and verifying through it. The server must close every hostile connection
 * (never hang, never crash), keep its memory bounded, and never disturb the good client.
 */
import fc from 'fast-check';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import {
  ClientFlag,
  Cmd,
  CmdFlag,
  encodeClientFlags,
  encodeExportNameOption,
  encodeInfoOption,
  encodeMetaContextOption,
  encodeOption,
  Opt,
} from '../../../src/nbd/protocol/index.js';
import { sleep } from '../../helpers/peers.js';
import { startServer, type ServerFixture } from './fixture.js';
import { RawClient, encodeWideRequestHeader } from './raw-client.js';

const SIZE = 1 << 20;

/** Mutations applied to an otherwise valid message. */
const mutate = (bytes: Buffer): fc.Arbitrary<Buffer> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(bytes) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: Math.max(0, bytes.length - 1) }).map((cut) => bytes.subarray(0, cut)) },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.nat({ max: Math.max(0, bytes.length - 1) }), fc.integer({ min: 1, max: 255 })).map(([at, x]) => {
        const copy = Buffer.from(bytes);
        if (copy.length > 0) copy[at] ^= x;
        return copy;
      }),
    },
  );

const name = fc.constantFrom('', 'disk', 'missing', 'x'.repeat(300));

const option: fc.Arbitrary<Buffer> = fc
  .oneof(
    fc.tuple(fc.integer({ min: 0, max: 20 }), fc.uint8Array({ maxLength: 64 })).map(([code, data]) => encodeOption(code, data)),
    fc.tuple(fc.constantFrom(Opt.INFO, Opt.GO), name, fc.array(fc.integer({ min: 0, max: 8 }), { maxLength: 5 })).map(([c, n, r]) =>
      encodeInfoOption(c as typeof Opt.GO, n, r),
    ),
    fc.tuple(fc.constantFrom(Opt.LIST_META_CONTEXT, Opt.SET_META_CONTEXT), name, fc.array(fc.constantFrom('base:allocation', 'base:', 'x:y', ''), { maxLength: 3 })).map(
      ([c, n, q]) => encodeMetaContextOption(c as typeof Opt.SET_META_CONTEXT, n, q),
    ),
    fc.constantFrom(encodeOption(Opt.STRUCTURED_REPLY), encodeOption(Opt.EXTENDED_HEADERS), encodeOption(Opt.LIST), encodeOption(Opt.STARTTLS)),
    name.map((n) => encodeExportNameOption(n)),
    // Hostile declared lengths: the header promises more data than will ever come, or far too much.
    fc.tuple(fc.integer({ min: 0, max: 12 }), fc.constantFrom(70_000, 2_000_000, 0xffffffff)).map(([code, length]) => {
      const h = encodeOption(code);
      h.writeUInt32BE(length, 12);
      return h;
    }),
  )
  .chain(mutate);

const handshake = fc
  .tuple(
    fc.oneof(fc.constant(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES), fc.nat()),
    fc.array(option, { maxLength: 8 }),
    // Sometimes a flood: the same options pipelined thousands of times.
    fc.oneof({ weight: 3, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 100, max: 5000 }) }),
  )
  .map(([flags, options, repeat]) => [encodeClientFlags(flags), ...(repeat === 1 ? options : Array.from({ length: repeat }, () => options).flat())]);

/** Arbitrary request frames in the header style of `extended`, offsets up to 2^64 − 1. */
const frames = (extended: boolean): fc.Arbitrary<Buffer[]> =>
  fc.array(
    fc
      .tuple(
        fc.constantFrom(Cmd.READ, Cmd.WRITE, Cmd.FLUSH, Cmd.TRIM, Cmd.CACHE, Cmd.WRITE_ZEROES, Cmd.BLOCK_STATUS, Cmd.DISC, 9, 0xffff),
        fc.oneof(fc.constant(0), fc.constantFrom(CmdFlag.FUA, CmdFlag.REQ_ONE, CmdFlag.DF, CmdFlag.PAYLOAD_LEN), fc.integer({ min: 0, max: 0xffff })),
        fc.oneof(fc.bigInt({ min: 0n, max: BigInt(SIZE) }), fc.constantFrom(BigInt(SIZE - 1), 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
        fc.oneof(fc.nat({ max: 70_000 }), fc.constantFrom(0, 0xffffffff, 33 * 1024 * 1024)),
        fc.boolean(),
      )
      .chain(([type, flags, offset, length, sendPayload]) => {
        // Extended WRITEs announce their payload with PAYLOAD_LEN; send it that way most of the time.
        const f = extended && type === Cmd.WRITE && sendPayload ? flags | CmdFlag.PAYLOAD_LEN : flags;
        const header = encodeWideRequestHeader(extended, type, f, 7n, offset, BigInt(length));
        const hasPayload = extended ? (f & CmdFlag.PAYLOAD_LEN) !== 0 : type === Cmd.WRITE;
        const payload = hasPayload && sendPayload && length <= 70_000 ? Buffer.alloc(length, 0xab) : Buffer.alloc(0);
        return mutate(Buffer.concat([header, payload]));
      }),
    { maxLength: 12 },
  );

/** A valid negotiation into transmission, then arbitrary request frames in the negotiated style. */
const transmission = fc
  .constantFrom('simple', 'structured', 'extended')
  .chain((mode) => fc.tuple(fc.constant(mode), frames(mode === 'extended')))
  .map(([mode, requests]) => {
    const pre: Buffer[] = [encodeClientFlags(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES)];
    if (mode === 'structured') pre.push(encodeOption(Opt.STRUCTURED_REPLY));
    if (mode === 'extended') pre.push(encodeOption(Opt.EXTENDED_HEADERS));
    pre.push(encodeMetaContextOption(Opt.SET_META_CONTEXT, 'disk', ['base:allocation']));
    pre.push(encodeInfoOption(Opt.GO, 'disk', []));
    return [...pre, ...requests];
  });

/**
 * Sends the segments, then ends or resets (reading replies or not); resolves when the server
 * closed.
 */
async function attack(port: number, segments: Buffer[], abrupt: boolean, deaf: boolean, serverDone: () => boolean): Promise<'closed' | 'hung'> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  // A deaf attacker never reads a reply: the server must still close it (closeTimeoutMs).
  if (!deaf) socket.on('data', () => {});
  const closed = new Promise<'closed'>((resolve) => socket.once('close', () => resolve('closed')));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  for (const s of segments) {
    if (socket.destroyed) break;
    socket.write(s);
  }
  if (abrupt) socket.destroy();
  else socket.end();
  if (deaf && !abrupt) {
    // A socket that never reads never sees the server's close either: ask the server instead.
    for (let i = 0; i < 250; i++) {
      if (serverDone()) return 'closed';
      await sleep(20);
    }
    socket.destroy();
    return 'hung';
  }
  return Promise.race([closed, sleep(5000).then(() => 'hung' as const)]).finally(() => socket.destroy());
}

describe('NBD server under hostile input', () => {
  let fixture: ServerFixture;
  let good: RawClient;
  let stop = false;
  let goodRounds = 0;
  let goodLoop: Promise<void>;
  const errors: unknown[] = [];
  let negotiated = 0;
  let disconnects = 0;

  beforeAll(async () => {
    fixture = await startServer({ exports: { disk: new MemoryDriver({ size: SIZE }) }, negotiationTimeoutMs: 3000, maxPayload: 65536, closeTimeoutMs: 300 });
    fixture.server.on('error', (e) => errors.push(e));
    fixture.server.on('negotiated', () => negotiated++);
    fixture.server.on('disconnect', () => disconnects++);
    good = await RawClient.connect(fixture.port);
    await good.start();
    await good.go('disk', { structured: true });
    // The well-behaved client: write a fresh pattern to its own region and read it back, forever.
    goodLoop = (async () => {
      while (!stop) {
        const fill = goodRounds % 251;
        const w = await good.write(SIZE - 8192, new Uint8Array(4096).fill(fill));
        const r = await good.read(SIZE - 8192, 4096);
        if (w.error !== 0 || r.error !== 0 || !r.data.every((b) => b === fill)) throw new Error(`good client broke in round ${goodRounds}`);
        goodRounds++;
        await sleep(1);
      }
    })();
  });

  afterAll(async () => {
    stop = true;
    await goodLoop.catch(() => {});
    good.destroy();
    await fixture.close();
  });

  it('closes every hostile handshake and never hangs', async () => {
    await fc.assert(
      fc.asyncProperty(handshake, fc.boolean(), fc.boolean(), async (segments, abrupt, deaf) => {
        // Earlier attackers' connections are gone first, so the next disconnect is this one's.
        for (let i = 0; i < 250 && fixture.server.connectionCount > 1; i++) await sleep(20);
        const ended = disconnects;
        expect(await attack(fixture.port, segments, abrupt, deaf, () => disconnects > ended)).toBe('closed');
      }),
      { numRuns: 150 },
    );
  });

  it('closes every hostile transmission stream and never hangs', async () => {
    const before = negotiated;
    await fc.assert(
      fc.asyncProperty(transmission, fc.boolean(), fc.boolean(), async (segments, abrupt, deaf) => {
        // Earlier attackers' connections are gone first, so the next disconnect is this one's.
        for (let i = 0; i < 250 && fixture.server.connectionCount > 1; i++) await sleep(20);
        const ended = disconnects;
        expect(await attack(fixture.port, segments, abrupt, deaf, () => disconnects > ended)).toBe('closed');
      }),
      { numRuns: 150 },
    );
    // Most streams really reached transmission (the rest were cut short by their mutations).
    expect(negotiated - before).toBeGreaterThan(50);
  });

  it('kept the good client working, leaked no connection and bounded memory', async () => {
    const before = goodRounds;
    await sleep(100);
    expect(goodRounds).toBeGreaterThan(before);
    // Every hostile connection is gone; only the good one remains.
    for (let i = 0; i < 50 && fixture.server.connectionCount > 1; i++) await sleep(50);
    expect(fixture.server.connectionCount).toBe(1);
    expect(process.memoryUsage().arrayBuffers).toBeLessThan(512 * 1024 * 1024);
    // Violations were reported as events, each tied to its own connection.
    expect(errors.length).toBeGreaterThan(0);
    const r = await good.read(SIZE - 8192, 16);
    expect(r.error).toBe(0);
  });
});
