/**
 * Zero-copy voting reads and adopted writes (src/quorum/leases.ts): the lease path must give the
 * same answers, events and rewrites as the copy path, whichever children lend, and must release
 * every lease it takes.
 */
import fc from 'fast-check';
import type { BlockCapabilities } from '../../src/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { BlockError, type BlockErrorCode } from '../../src/errors.js';
import { FilterDriver } from '../../src/filter.js';
import type { IoOptions, ReadLease, WriteOptions } from '../../src/types.js';
import { Quorum } from '../../src/quorum/quorum.js';
import { ADOPT_MIN_BYTES, sameBytes } from '../../src/quorum/leases.js';
import { caseBytes, quorumCaseArb } from '../../src/testing/quorum.js';
import { expectedEvents, record } from './harness.js';
import { hex, modelQuorumRead, type ModelOutcome } from './model.js';

/**
 * A pass-through filter that lends its child's views (or declines, like most filters), counts the
 * leases not yet released, can fail every read and lease with a code, and records the
 * `immutable` flag of each write.
 */
class Lender extends FilterDriver {
  outstanding = 0;
  leases = 0;
  failWith: BlockErrorCode | undefined;
  readonly immutableWrites: boolean[] = [];
  constructor(child: MemoryDriver, readonly lend: boolean) {
    super(child);
  }
  #fail(offset: number, length: number): Promise<never> {
    return Promise.reject(new BlockError(this.failWith as BlockErrorCode, `${this.name}: injected`, { details: { op: 'read', offset, length } }));
  }
  protected override _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    if (this.failWith !== undefined) return this.#fail(offset, target.length);
    return super._read(offset, target, options);
  }
  protected override async _leaseRead(offset: number, length: number, options: IoOptions): Promise<ReadLease | undefined> {
    if (!this.lend) return undefined;
    if (this.failWith !== undefined) return this.#fail(offset, length);
    const lease = await this.leaseFromChild(offset, length, options);
    if (lease === undefined) return undefined;
    this.leases++;
    this.outstanding++;
    let released = false;
    return {
      views: lease.views,
      release: () => {
        if (!released) this.outstanding--;
        released = true;
        lease.release();
      },
    };
  }
  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    this.immutableWrites.push(options.immutable === true);
    return super._write(offset, data, options);
  }
}

const open: Quorum[] = [];
afterEach(async () => {
  for (const q of open.splice(0)) await q.close();
});

function lenders(lend: readonly boolean[], size: number, chunkSize?: number): { mems: MemoryDriver[]; kids: Lender[] } {
  const mems = lend.map(() => new MemoryDriver({ size, chunkSize }));
  return { mems, kids: mems.map((m, i) => new Lender(m, lend[i])) };
}

describe('voting reads over lent views', () => {
  it('agree with the model (answer, code, events, rewrites) whether all, some or no children lend, and release every lease', async () => {
    const SIZE = 96;
    const arb = fc.record({
      c: quorumCaseArb({ blkverify: true }),
      offset: fc.integer({ min: 0, max: 64 }),
      lendMode: fc.constantFrom('all', 'none', 'mixed'),
      mixed: fc.array(fc.boolean(), { minLength: 7, maxLength: 7 }),
    });
    await fc.assert(
      fc.asyncProperty(arb, async ({ c, offset, lendMode, mixed }) => {
        const n = c.specs.length;
        const lend = [...Array(n).keys()].map((i) => (lendMode === 'all' ? true : lendMode === 'none' ? false : mixed[i]));
        const { mems, kids } = lenders(lend, SIZE);
        const q = new Quorum({ children: kids, threshold: c.threshold, rewriteCorrupted: c.rewriteCorrupted, blkverify: c.blkverify });
        const events = record(q);
        const outcomes: ModelOutcome[] = [];
        const stored: Uint8Array[] = [];
        for (let i = 0; i < n; i++) {
          const spec = c.specs[i];
          const bytes = caseBytes(c, i);
          await mems[i].write(offset, bytes);
          stored.push(bytes);
          if (spec.kind === 'error') kids[i].failWith = spec.code;
          outcomes.push(spec.kind === 'error' ? { ok: false, code: spec.code } : { ok: true, data: bytes });
        }
        const len = c.good.length;
        const exp = modelQuorumRead(outcomes, c.threshold, c);
        const got = await q.read(offset, len).then(
          (data) => ({ ok: true as const, data }),
          (error: { code: BlockErrorCode }) => ({ ok: false as const, error }),
        );
        expect(got.ok).toBe(exp.ok);
        if (got.ok) expect(hex(got.data)).toBe(exp.dataHex);
        else expect(got.error.code).toBe(exp.code);
        expect(events).toEqual(expectedEvents(exp, 'read', offset, len));
        for (let i = 0; i < n; i++) {
          expect(hex(await mems[i].read(offset, len))).toBe(exp.rewrite.includes(i) ? exp.dataHex : hex(stored[i]));
        }
        // Every child that can lend and does not fail was asked, and every lease came back.
        if (lendMode === 'all') expect(kids.filter((k) => k.failWith === undefined).every((k) => k.leases === 1)).toBe(true);
        for (const k of kids) expect(k.outstanding).toBe(0);
        await q.close();
      }),
      { numRuns: 600 },
    );
  });

  it('a child rejecting the lease counts as a failed read, reported once, and still releases the other leases', async () => {
    const { mems, kids } = lenders([true, true, true], 4096);
    const q = new Quorum({ children: kids, threshold: 2 });
    open.push(q);
    const events = record(q);
    await q.write(0, new Uint8Array(4096).fill(9));
    kids[1].failWith = 'EIO';
    expect(hex(await q.read(512, 1024))).toBe(hex(new Uint8Array(1024).fill(9)));
    expect(events).toEqual([{ kind: 'report-bad', child: 'children.1', type: 'read', code: 'EIO', offset: 512, length: 1024 }]);
    expect(kids.map((k) => k.outstanding)).toEqual([0, 0, 0]);
    expect(mems.length).toBe(3);
  });
});

describe('large writes sent once as immutable', () => {
  it('children adopt one private copy: later changes to the caller\'s buffer never reach the replicas', async () => {
    const SIZE = 4 * ADOPT_MIN_BYTES;
    const write = fc.record({
      offset: fc.integer({ min: 0, max: SIZE - 1 }),
      length: fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: ADOPT_MIN_BYTES, max: 2 * ADOPT_MIN_BYTES })),
      seed: fc.integer({ min: 1, max: 255 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(write, { minLength: 1, maxLength: 6 }), fc.constantFrom(512, 4096, 65536), async (writes, chunkSize) => {
        const { mems, kids } = lenders([true, true, true], SIZE, chunkSize);
        const q = new Quorum({ children: kids, threshold: 2, rewriteCorrupted: true });
        const model = new Uint8Array(SIZE);
        for (const w of writes) {
          const len = Math.min(w.length, SIZE - w.offset);
          const data = new Uint8Array(len).map((_, i) => (i * w.seed + w.offset) & 0xff);
          await q.write(w.offset, data);
          model.set(data, w.offset);
          // The caller reuses its buffer at once, as the driver contract allows.
          data.fill(0xee);
          const sentImmutable = kids.map((k) => k.immutableWrites.at(-1));
          expect(sentImmutable).toEqual(Array(3).fill(len >= ADOPT_MIN_BYTES));
        }
        for (const m of mems) expect(hex(await m.read(0, SIZE))).toBe(hex(model));
        // A replica changed behind the quorum's back is outvoted and repaired, not its neighbours.
        const at = writes[0].offset;
        await mems[2].write(at, new Uint8Array([model[at] ^ 0xff]));
        expect(hex(await q.read(0, SIZE))).toBe(hex(model));
        for (const m of mems) expect(hex(await m.read(0, SIZE))).toBe(hex(model));
        for (const k of kids) expect(k.outstanding).toBe(0);
        await q.close();
      }),
      { numRuns: 60 },
    );
  });

  it('the shared copy is reused once no replica and no lease holds it, and never before', async () => {
    const SIZE = 4 * ADOPT_MIN_BYTES;
    /** Records the memory each write was sent from. */
    class Spy extends FilterDriver {
      readonly sent: ArrayBufferLike[] = [];
      protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
        this.sent.push(data.buffer);
        return super._write(offset, data, options);
      }
    }
    const slot = fc.integer({ min: 0, max: 3 });
    const step = fc.record({ slot, seed: fc.integer({ min: 1, max: 255 }), lease: fc.boolean(), release: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
        const mems = [0, 1, 2].map(() => new MemoryDriver({ size: SIZE }));
        const spies = mems.map((m) => new Spy(m));
        const q = new Quorum({ children: spies, threshold: 2 });
        const model = new Uint8Array(SIZE);
        const held: { lease: ReadLease; bytes: string }[] = [];
        for (const s of steps) {
          const at = s.slot * ADOPT_MIN_BYTES;
          if (s.lease) {
            const lease = (await mems[s.seed % 3].leaseRead(at, ADOPT_MIN_BYTES)) as ReadLease;
            held.push({ lease, bytes: hex(model.subarray(at, at + ADOPT_MIN_BYTES)) });
          }
          const data = new Uint8Array(ADOPT_MIN_BYTES).fill(s.seed);
          await q.write(at, data);
          model.set(data, at);
          data.fill(0xee);
          if (s.release) held.shift()?.lease.release();
          // Every replica reads the model, and memory a lease still holds is untouched.
          for (const m of mems) expect(hex(await m.read(0, SIZE))).toBe(hex(model));
          for (const h of held) expect(hex(Buffer.concat(h.lease.views))).toBe(h.bytes);
        }
        // Every child got the same memory for each write.
        expect(spies[1].sent).toEqual(spies[0].sent);
        expect(spies[2].sent).toEqual(spies[0].sent);
        for (const h of held) h.lease.release();
        await q.close();
      }),
      { numRuns: 80 },
    );
  });

  it('overwriting a slot frees its copy for the next write (no allocation in steady state)', async () => {
    const size = 2 * ADOPT_MIN_BYTES;
    const mems = [0, 1, 2].map(() => new MemoryDriver({ size }));
    const sent: ArrayBufferLike[] = [];
    class Spy extends FilterDriver {
      protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
        if (this === spies[0]) sent.push(data.buffer);
        return super._write(offset, data, options);
      }
    }
    const spies = mems.map((m) => new Spy(m));
    const q = new Quorum({ children: spies, threshold: 2 });
    open.push(q);
    const data = new Uint8Array(ADOPT_MIN_BYTES);
    for (let i = 0; i < 6; i++) await q.write((i % 2) * ADOPT_MIN_BYTES, data.fill(i + 1));
    // Writes 0 and 1 fill both slots; from then on each write frees the copy two writes back.
    expect(new Set(sent).size).toBe(3);
    expect(sent[3]).toBe(sent[0]);
    expect(hex(await mems[2].read(0, size))).toBe(hex(Buffer.concat([new Uint8Array(ADOPT_MIN_BYTES).fill(5), new Uint8Array(ADOPT_MIN_BYTES).fill(6)])));
  });

  it("a caller's own immutable buffer is sent as it is, and small writes are not copied", async () => {
    const { kids } = lenders([true, true], ADOPT_MIN_BYTES * 2);
    const q = new Quorum({ children: kids, threshold: 2 });
    open.push(q);
    await q.write(0, new Uint8Array(ADOPT_MIN_BYTES), { immutable: true, fua: true });
    await q.write(0, new Uint8Array(ADOPT_MIN_BYTES - 1));
    await q.write(0, new Uint8Array(ADOPT_MIN_BYTES), { signal: new AbortController().signal });
    expect(kids[0].immutableWrites).toEqual([true, false, true]);
  });

  it('shareWrites: false sends large writes as they are', async () => {
    const { mems, kids } = lenders([true, true], ADOPT_MIN_BYTES * 2);
    const q = new Quorum({ children: kids, threshold: 2, shareWrites: false });
    open.push(q);
    const data = new Uint8Array(ADOPT_MIN_BYTES).fill(3);
    await q.write(0, data);
    data.fill(4);
    expect(kids[1].immutableWrites).toEqual([false]);
    expect(hex(await mems[1].read(0, ADOPT_MIN_BYTES))).toBe(hex(new Uint8Array(ADOPT_MIN_BYTES).fill(3)));
  });
});

describe("shareWrites: 'auto' (the default)", () => {
  /** A child that copies every write itself: it does not claim canAdoptWrites. */
  class Copier extends Lender {
    override get capabilities(): BlockCapabilities {
      return { ...this.child.capabilities, canAdoptWrites: false };
    }
  }

  it('shares large writes only when every child adopts them', async () => {
    const size = ADOPT_MIN_BYTES * 2;
    const adopting = lenders([true, true, true], size).kids;
    const mixed = [new Lender(new MemoryDriver({ size }), true), new Copier(new MemoryDriver({ size }), true), new Lender(new MemoryDriver({ size }), true)];
    for (const [kids, shared] of [[adopting, true], [mixed, false]] as const) {
      const q = new Quorum({ children: kids, threshold: 2 });
      open.push(q);
      await q.write(0, new Uint8Array(ADOPT_MIN_BYTES).fill(9));
      expect(kids.map((k) => k.immutableWrites.at(-1))).toEqual([shared, shared, shared]);
    }
  });

  it('a quorum of adopting children adopts too: nested quorums share one copy, and the hint is no manifest change', async () => {
    const size = ADOPT_MIN_BYTES * 2;
    const inner = new Quorum({ children: [0, 1, 2].map(() => new MemoryDriver({ size })), threshold: 2 });
    expect(inner.capabilities.canAdoptWrites).toBe(true);
    const spy = new Lender(new MemoryDriver({ size }), true);
    const outer = new Quorum({ children: [inner, spy], threshold: 2, closeChildren: true });
    open.push(outer);
    await outer.write(0, new Uint8Array(ADOPT_MIN_BYTES).fill(4));
    expect(spy.immutableWrites).toEqual([true]);
    // Adding a child that copies turns sharing off without counting as a manifest change.
    const copier = new (class extends Lender {
      override get capabilities(): BlockCapabilities {
        return { ...this.child.capabilities, canAdoptWrites: false };
      }
    })(new MemoryDriver({ size }), true);
    await copier.write(0, new Uint8Array(ADOPT_MIN_BYTES).fill(4));
    await outer.addChild(copier);
    expect(outer.capabilities.canAdoptWrites).toBe(false);
    await outer.write(0, new Uint8Array(ADOPT_MIN_BYTES).fill(5));
    expect(spy.immutableWrites.at(-1)).toBe(false);
  });

  it('refuses a shareWrites value that is not true, false or auto', () => {
    const { kids } = lenders([true, true], 4096);
    expect(() => new Quorum({ children: kids, threshold: 1, shareWrites: 'sometimes' as never })).toThrow(/shareWrites/);
  });
});

describe('sameBytes', () => {
  it('compares view lists cut at any places, by value', () => {
    const cut = (bytes: Uint8Array, cuts: number[]): Uint8Array[] => {
      const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      const out: Uint8Array[] = [];
      let from = 0;
      for (const c of [...at, bytes.length]) {
        out.push(bytes.subarray(from, c));
        from = c;
      }
      return out;
    };
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 64 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.option(fc.nat()),
        fc.boolean(),
        (bytes, ca, cb, flip, share) => {
          const other = share ? bytes : Uint8Array.from(bytes);
          if (flip !== null && other.length > 0) {
            const copy = Uint8Array.from(other);
            copy[flip % copy.length] ^= 1;
            expect(sameBytes(cut(bytes, ca), cut(copy, cb))).toBe(false);
          }
          expect(sameBytes(cut(bytes, ca), cut(other, cb))).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
