/**
 * The transmission phase against a raw client: a model-based run of random commands in every reply
 * mode, the spec's errors for bad requests (without the driver ever seeing them), zero-length and
 * huge requests, structured READ shapes, FUA and zeroing flags reaching the driver.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import { Cmd, CmdFlag, ReplyFlag, TransmissionFlag } from '../../../src/nbd/protocol/index.js';
import { serverScope, startServer } from './fixture.js';
import { RawClient } from './raw-client.js';
import { FailingDriver, GateDriver, SpyDriver } from './test-drivers.js';

const EPERM = 1;
const EIO = 5;
const EINVAL = 22;
const ENOSPC = 28;
const ENOTSUP = 95;

const scope = serverScope();

type Mode = 'simple' | 'structured' | 'extended';

async function open(exports: Parameters<typeof startServer>[0] = {}, mode: Mode = 'simple', name = ''): Promise<RawClient> {
  scope.fixture ??= await startServer(exports);
  const c = await RawClient.connect(scope.fixture.port);
  scope.clients.push(c);
  await c.start();
  await c.go(name, {
    structured: mode === 'structured',
    extended: mode === 'extended',
    metaContexts: mode === 'simple' ? undefined : ['base:allocation'],
  });
  return c;
}

// ---- model-based run ------------------------------------------------------------------------

const SIZE = 256 * 1024;

interface Model {
  data: Uint8Array;
  /** 1 where the content is defined (TRIM leaves the range undefined). */
  known: Uint8Array;
}
interface Real {
  client: RawClient;
}

const range = fc
  .tuple(fc.integer({ min: 0, max: SIZE }), fc.integer({ min: 0, max: 70000 }))
  .map(([offset, length]) => ({ offset, length: Math.min(length, SIZE - offset) }));

class WriteCmd implements fc.AsyncCommand<Model, Real> {
  constructor(readonly offset: number, readonly bytes: Uint8Array, readonly fua: boolean) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const reply = await r.client.write(this.offset, this.bytes, this.fua ? CmdFlag.FUA : 0);
    expect(reply.error).toBe(0);
    m.data.set(this.bytes, this.offset);
    m.known.fill(1, this.offset, this.offset + this.bytes.length);
  }
  toString(): string {
    return `write(${this.offset}, ${this.bytes.length}${this.fua ? ', fua' : ''})`;
  }
}

class ReadCmd implements fc.AsyncCommand<Model, Real> {
  constructor(readonly offset: number, readonly length: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const reply = await r.client.read(this.offset, this.length);
    expect(reply.error).toBe(0);
    for (let i = 0; i < this.length; i++) {
      if (m.known[this.offset + i] === 1 && reply.data[i] !== m.data[this.offset + i]) {
        throw new Error(`byte ${this.offset + i}: got ${reply.data[i]}, model ${m.data[this.offset + i]}`);
      }
    }
  }
  toString(): string {
    return `read(${this.offset}, ${this.length})`;
  }
}

class ZeroCmd implements fc.AsyncCommand<Model, Real> {
  constructor(readonly offset: number, readonly length: number, readonly noHole: boolean) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const reply = await r.client.request(Cmd.WRITE_ZEROES, this.offset, this.length, { flags: this.noHole ? CmdFlag.NO_HOLE : 0 });
    expect(reply.error).toBe(0);
    m.data.fill(0, this.offset, this.offset + this.length);
    m.known.fill(1, this.offset, this.offset + this.length);
  }
  toString(): string {
    return `zero(${this.offset}, ${this.length}${this.noHole ? ', no-hole' : ''})`;
  }
}

class TrimCmd implements fc.AsyncCommand<Model, Real> {
  constructor(readonly offset: number, readonly length: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    expect((await r.client.request(Cmd.TRIM, this.offset, this.length)).error).toBe(0);
    m.known.fill(0, this.offset, this.offset + this.length);
  }
  toString(): string {
    return `trim(${this.offset}, ${this.length})`;
  }
}

class FlushCmd implements fc.AsyncCommand<Model, Real> {
  check(): boolean {
    return true;
  }
  async run(_m: Model, r: Real): Promise<void> {
    expect((await r.client.request(Cmd.FLUSH, 0, 0)).error).toBe(0);
  }
  toString(): string {
    return 'flush';
  }
}

class StatusCmd implements fc.AsyncCommand<Model, Real> {
  constructor(readonly offset: number, readonly length: number, readonly one: boolean) {}
  check(): boolean {
    return this.length > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    const reply = await r.client.request(Cmd.BLOCK_STATUS, this.offset, this.length, { flags: this.one ? CmdFlag.REQ_ONE : 0 });
    if (r.client.contextId === undefined) {
      expect(reply.error).toBe(EINVAL);
      return;
    }
    expect(reply.error).toBe(0);
    const chunk = reply.chunks.find((c) => c.kind === 'blockStatus');
    if (chunk?.kind !== 'blockStatus') throw new Error('no block status chunk');
    expect(chunk.contextId).toBe(r.client.contextId);
    if (this.one) expect(chunk.extents).toHaveLength(1);
    let pos = this.offset;
    for (const e of chunk.extents) {
      expect(e.length).toBeGreaterThan(0);
      // An extent claiming ZERO must be zero wherever the model knows the content.
      if ((e.flags & 2) !== 0) {
        for (let i = pos; i < pos + e.length; i++) if (m.known[i] === 1 && m.data[i] !== 0) throw new Error(`ZERO extent covers data at ${i}`);
      }
      pos += e.length;
    }
    expect(pos).toBeLessThanOrEqual(this.offset + this.length);
  }
  toString(): string {
    return `status(${this.offset}, ${this.length}${this.one ? ', one' : ''})`;
  }
}

const commands = [
  fc.tuple(fc.integer({ min: 0, max: SIZE - 1 }), fc.uint8Array({ minLength: 1, maxLength: 70000 }), fc.boolean()).map(
    ([o, b, fua]) => new WriteCmd(o, b.subarray(0, SIZE - o), fua),
  ),
  range.map((r) => new ReadCmd(r.offset, r.length)),
  fc.tuple(range, fc.boolean()).map(([r, nh]) => new ZeroCmd(r.offset, r.length, nh)),
  range.map((r) => new TrimCmd(r.offset, r.length)),
  fc.constant(new FlushCmd()),
  fc.tuple(range, fc.boolean()).map(([r, one]) => new StatusCmd(r.offset, r.length, one)),
];

describe('NBD server transmission', () => {
  for (const mode of ['simple', 'structured', 'extended'] as const) {
    it(`matches a byte-array model under random commands (${mode} replies)`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, { maxCommands: 40 }), async (cmds) => {
          const f = await startServer({ exports: { '': new MemoryDriver({ size: SIZE, chunkSize: 4096 }) } });
          const client = await RawClient.connect(f.port);
          try {
            await client.start();
            await client.go('', {
              structured: mode === 'structured',
              extended: mode === 'extended',
              metaContexts: mode === 'simple' ? undefined : ['base:allocation'],
            });
            await fc.asyncModelRun(() => ({ model: { data: new Uint8Array(SIZE), known: new Uint8Array(SIZE).fill(1) }, real: { client } }), cmds);
          } finally {
            client.destroy();
            await f.close();
          }
        }),
        { numRuns: 25 },
      );
    });
  }

  it('answers bad requests with the spec error and never calls the driver for them', async () => {
    const spy = new SpyDriver(new MemoryDriver({ size: 1 << 20 }));
    const c = await open({ exports: { '': spy } }, 'structured');
    const size = 1 << 20;
    const cases: [number, number, number, number, number][] = [
      // type, flags, offset, length, expected error
      [Cmd.READ, 0, size - 10, 11, EINVAL],
      [Cmd.READ, 0, 2 ** 60, 1, EINVAL],
      [Cmd.TRIM, 0, size, 1, EINVAL],
      [Cmd.WRITE_ZEROES, 0, size - 1, 2, ENOSPC],
      [Cmd.CACHE, 0, size + 1, 0, EINVAL],
      [Cmd.BLOCK_STATUS, 0, size, 1, EINVAL],
      [Cmd.BLOCK_STATUS, 0, 0, 0, EINVAL],
      [Cmd.READ, 0, 0, 64 * 1024 * 1024, EINVAL],
      [Cmd.READ, 0x40, 0, 16, EINVAL],
      [Cmd.READ, CmdFlag.REQ_ONE, 0, 16, EINVAL],
      [Cmd.TRIM, CmdFlag.NO_HOLE, 0, 16, EINVAL],
      [Cmd.RESIZE, 0, 0, 16, EINVAL],
      [42, 0, 0, 16, EINVAL],
    ];
    for (const [type, flags, offset, length, want] of cases) {
      const r = await c.request(type, offset, length, { flags });
      expect({ type, flags, offset, length, error: r.error }).toEqual({ type, flags, offset, length, error: want });
      expect(r.message.length).toBeGreaterThan(0);
    }
    const w = await c.write(size - 3, new Uint8Array(4));
    expect(w.error).toBe(ENOSPC);
    expect(spy.calls).toEqual([]);
    // The connection survived all of that.
    expect((await c.read(0, 4)).error).toBe(0);
  });

  it('takes READs and WRITEs of exactly maxPayload bytes and refuses one byte more', async () => {
    const c = await open({ maxPayload: 65536, exports: { '': new MemoryDriver({ size: 1 << 20 }) } }, 'structured');
    expect((await c.write(0, new Uint8Array(65536).fill(3))).error).toBe(0);
    const r = await c.read(0, 65536);
    expect(r.error).toBe(0);
    expect(r.data.every((b) => b === 3)).toBe(true);
    expect((await c.read(0, 65537)).error).toBe(EINVAL);
  });

  it('refuses the DF flag unless structured replies were agreed', async () => {
    const simple = await open({}, 'simple');
    expect((await simple.request(Cmd.READ, 0, 16, { flags: CmdFlag.DF })).error).toBe(EINVAL);
    const structured = await open({}, 'structured');
    expect((await structured.request(Cmd.READ, 0, 16, { flags: CmdFlag.DF })).error).toBe(0);
  });

  it('answers BLOCK_STATUS with REQ_ONE with exactly one descriptor, and without it with the whole map', async () => {
    const disk = new MemoryDriver({ size: 1 << 20, chunkSize: 4096 });
    await disk.write(8192, new Uint8Array(4096).fill(1));
    await disk.write(65536, new Uint8Array(4096).fill(1));
    const c = await open({ exports: { '': disk } }, 'structured');
    const descriptors = async (flags: number) => {
      const r = await c.request(Cmd.BLOCK_STATUS, 0, 1 << 20, { flags });
      const chunk = r.chunks.find((x) => x.kind === 'blockStatus');
      if (chunk?.kind !== 'blockStatus') throw new Error('no block status chunk');
      return chunk.extents.map((e) => [e.length, e.flags]);
    };
    expect(await descriptors(CmdFlag.REQ_ONE)).toEqual([[8192, 3]]);
    expect(await descriptors(0)).toEqual([
      [8192, 3],
      [4096, 0],
      [65536 - 12288, 3],
      [4096, 0],
      [(1 << 20) - 69632, 3],
    ]);
  });

  it('counts WRITE payloads against maxQueuedReplyBytes: writes past the budget wait for earlier ones', async () => {
    const gate = new GateDriver(new MemoryDriver({ size: 4 << 20 }));
    const c = await open({ maxQueuedReplyBytes: 1 << 20, exports: { '': gate } }, 'structured');
    const writes = [0, 1, 2, 3].map((i) => c.write(i * (512 << 10), new Uint8Array(512 << 10).fill(i + 1)));
    await gate.whenHeld(2);
    // Give the server time to start more if it (wrongly) would.
    await new Promise((r) => setTimeout(r, 100));
    expect(gate.held).toBe(2);
    for (let i = 0; i < 10 && gate.held > 0; i++) {
      gate.release();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await Promise.all(writes)).map((w) => w.error)).toEqual([0, 0, 0, 0]);
    expect(gate.maxRunning).toBe(2);
  });

  it('hands FLUSH, TRIM (with its FUA), WRITE_ZEROES and CACHE to the driver, with their arguments', async () => {
    const spy = new SpyDriver(new MemoryDriver({ size: 1 << 20 }));
    spy.setCapabilities({ canCache: true });
    const c = await open({ exports: { '': spy } }, 'structured');
    expect((await c.request(Cmd.FLUSH, 0, 0)).error).toBe(0);
    expect((await c.request(Cmd.TRIM, 4096, 8192, { flags: CmdFlag.FUA })).error).toBe(0);
    expect((await c.request(Cmd.WRITE_ZEROES, 0, 512, { flags: CmdFlag.NO_HOLE })).error).toBe(0);
    expect((await c.request(Cmd.CACHE, 512, 1024)).error).toBe(0);
    expect(spy.calls.map((x) => [x.op, x.offset, x.length])).toEqual([
      ['flush', 0, 0],
      ['discard', 4096, 8192],
      ['writeZeroes', 0, 512],
      ['cache', 512, 1024],
    ]);
    expect(spy.calls[1].options).toMatchObject({ fua: true });
    expect(spy.calls[2].options).toMatchObject({ mayUnmap: false });
  });

  it('refuses writes to a read-only export with EPERM', async () => {
    scope.fixture = await startServer({ exports: {} });
    const spy = new SpyDriver(new MemoryDriver({ size: 65536 }));
    scope.fixture.server.addExport('ro', spy, { readOnly: true });
    const c = await open({}, 'simple', 'ro');
    expect(c.transmissionFlags & TransmissionFlag.READ_ONLY).toBe(TransmissionFlag.READ_ONLY);
    expect((await c.write(0, new Uint8Array(8))).error).toBe(EPERM);
    expect((await c.request(Cmd.TRIM, 0, 8)).error).toBe(EPERM);
    expect((await c.request(Cmd.WRITE_ZEROES, 0, 8)).error).toBe(EPERM);
    expect(spy.calls).toEqual([]);
    expect((await c.read(0, 8)).error).toBe(0);
  });

  it('accepts zero-length requests without disconnecting', async () => {
    for (const mode of ['simple', 'structured', 'extended'] as const) {
      const c = await open({}, mode);
      for (const type of [Cmd.READ, Cmd.TRIM, Cmd.WRITE_ZEROES, Cmd.CACHE]) expect((await c.request(type, 4096, 0)).error).toBe(0);
      // At the very end of the export too: an empty range at `size` is inside it.
      for (const type of [Cmd.READ, Cmd.TRIM, Cmd.WRITE_ZEROES, Cmd.CACHE]) expect((await c.request(type, 4 * 1024 * 1024, 0)).error).toBe(0);
      expect((await c.write(4096, new Uint8Array(0))).error).toBe(0);
      expect((await c.read(0, 4)).error).toBe(0);
    }
  });

  it('accepts TRIM and WRITE_ZEROES of 0xffffffff bytes, beyond the payload limit', async () => {
    const c = await open({ exports: { '': new MemoryDriver({ size: 2 ** 33 }) } }, 'structured');
    expect((await c.write(2 ** 32 - 4096, new Uint8Array(4096).fill(9))).error).toBe(0);
    expect((await c.request(Cmd.WRITE_ZEROES, 0, 0xffffffff)).error).toBe(0);
    const after = (await c.read(2 ** 32 - 4096, 4096)).data;
    // 0xffffffff bytes stop one short of 2^32: the last byte keeps its data.
    expect(after.subarray(0, 4095).every((b) => b === 0)).toBe(true);
    expect(after[4095]).toBe(9);
    expect((await c.request(Cmd.TRIM, 0, 0xffffffff)).error).toBe(0);
  });

  it('extended headers carry 64-bit effect lengths and BLOCK_STATUS_EXT', async () => {
    const c = await open({ exports: { '': new MemoryDriver({ size: 2 ** 34 }) } }, 'extended');
    expect((await c.write(2 ** 33, new Uint8Array([1, 2, 3]))).error).toBe(0);
    expect((await c.request(Cmd.WRITE_ZEROES, 0, 2 ** 33 + 4096)).error).toBe(0);
    expect([...(await c.read(2 ** 33, 3)).data]).toEqual([0, 0, 0]);
    const bs = await c.request(Cmd.BLOCK_STATUS, 0, 2 ** 34);
    const chunk = bs.chunks[0];
    expect(chunk).toMatchObject({ kind: 'blockStatus', wide: true });
    if (chunk.kind === 'blockStatus') expect(chunk.extents[0].length).toBeGreaterThan(2 ** 32);
  });

  it('sends a WRITE payload over the limit to /dev/null with EINVAL, and drops a hostile one', async () => {
    const c = await open({ maxPayload: 65536 });
    const r = await c.write(0, new Uint8Array(100 * 1024));
    expect(r.error).toBe(EINVAL);
    expect((await c.read(0, 4)).error).toBe(0);
    // A payload beyond twice the limit (and beyond 32 MiB) may be a denial of service: hard disconnect.
    void c.request(Cmd.WRITE, 0, 0xffffffff, { payload: undefined }).catch(() => {});
    await c.closed;
  });

  it('structured READ: one data chunk for data, holes for sparse ranges, one chunk with DF', async () => {
    const c = await open({ exports: { '': new MemoryDriver({ size: 1 << 20 }) } }, 'structured');
    await c.write(0, new Uint8Array(4096).fill(7));
    const dense = await c.read(0, 4096);
    expect(dense.chunks.map((x) => [x.kind, x.done])).toEqual([['data', true]]);
    const sparse = await c.read(0, 512 * 1024);
    expect(sparse.chunks.some((x) => x.kind === 'hole')).toBe(true);
    expect(sparse.chunks.at(-1)?.done).toBe(true);
    expect(sparse.data.subarray(0, 4096).every((b) => b === 7)).toBe(true);
    expect(sparse.data.subarray(4096).every((b) => b === 0)).toBe(true);
    const df = await c.read(0, 512 * 1024, CmdFlag.DF);
    expect(df.chunks.filter((x) => x.kind === 'data' || x.kind === 'hole')).toHaveLength(1);
    expect(df.data.subarray(0, 4096).every((b) => b === 7)).toBe(true);
  });

  it('reports driver failures: an error chunk with a message, or the simple error value', async () => {
    const failing = new FailingDriver(new MemoryDriver({ size: 65536 }), 32768, 'EIO');
    scope.fixture = await startServer({ exports: { '': failing } });
    const s = await open({}, 'structured');
    const r = await s.read(30000, 4096);
    expect(r.error).toBe(EIO);
    expect(r.message).toContain('injected');
    expect(r.chunks).toEqual([expect.objectContaining({ kind: 'error', done: true, flags: ReplyFlag.DONE })]);
    const p = await open({}, 'simple');
    expect((await p.read(30000, 4096)).error).toBe(EIO);
    expect((await p.write(40000, new Uint8Array(10))).error).toBe(EIO);
    expect((await p.read(0, 10)).error).toBe(0);
  });

  it('passes FUA, NO_HOLE and FAST_ZERO through, and answers FAST_ZERO with ENOTSUP when zeroing is slow', async () => {
    const spy = new SpyDriver(new MemoryDriver({ size: 65536 }));
    const c = await open({ exports: { '': spy } });
    expect(c.transmissionFlags & TransmissionFlag.SEND_FAST_ZERO).toBe(TransmissionFlag.SEND_FAST_ZERO);
    await c.write(0, new Uint8Array(8), CmdFlag.FUA);
    await c.request(Cmd.WRITE_ZEROES, 0, 8, { flags: CmdFlag.NO_HOLE | CmdFlag.FUA });
    await c.request(Cmd.WRITE_ZEROES, 8, 8, { flags: CmdFlag.FAST_ZERO });
    expect(spy.calls).toEqual([
      { op: 'write', offset: 0, length: 8, options: expect.objectContaining({ fua: true }) },
      { op: 'writeZeroes', offset: 0, length: 8, options: expect.objectContaining({ fua: true, mayUnmap: false, fastZero: false }) },
      { op: 'writeZeroes', offset: 8, length: 8, options: expect.objectContaining({ mayUnmap: true, fastZero: true }) },
    ]);
    spy.setCapabilities({ canFastZero: false });
    expect((await c.request(Cmd.WRITE_ZEROES, 0, 8, { flags: CmdFlag.FAST_ZERO })).error).toBe(ENOTSUP);
  });

  it('keeps WRITE payloads intact for drivers that use them later (reads share one buffer)', async () => {
    class LateWriter extends MemoryDriver {
      protected override async _write(offset: number, data: Uint8Array, options: object): Promise<void> {
        await new Promise((r) => setTimeout(r, 5));
        return super._write(offset, data, options);
      }
    }
    const c = await open({ exports: { '': new LateWriter({ size: 1 << 20 }) } });
    // Many small writes pipelined: they arrive whole inside the same reads.
    const writes = Array.from({ length: 200 }, (_, i) => c.write(i * 1000, new Uint8Array(1000).fill(i % 256)));
    expect((await Promise.all(writes)).every((r) => r.error === 0)).toBe(true);
    const back = (await c.read(0, 200_000)).data;
    for (let i = 0; i < 200; i++) expect(back.subarray(i * 1000, (i + 1) * 1000).every((b) => b === i % 256)).toBe(true);
  });

  it('enforces the driver alignment it advertises', async () => {
    class Aligned extends MemoryDriver {
      override get limits() {
        return { minBlockSize: 512, preferredBlockSize: 4096, maxBlockSize: 2 ** 25, maxTransfer: 2 ** 25 };
      }
    }
    const spy = new SpyDriver(new Aligned({ size: 1 << 20 }));
    const c = await open({ exports: { '': spy } }, 'structured');
    expect((await c.read(1, 512)).error).toBe(EINVAL);
    expect((await c.read(0, 511)).error).toBe(EINVAL);
    expect((await c.write(512, new Uint8Array(100))).error).toBe(EINVAL);
    expect(spy.calls).toEqual([]);
    expect((await c.read(512, 1024)).error).toBe(0);
  });
});
