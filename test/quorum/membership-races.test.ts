/**
 * Membership changes racing with requests: a join whose `sync` reads through the quorum while a
 * write waits for the join, and requests that were decided on before a child was removed (a fifo
 * fallback, a rewriteCorrupted repair, a re-read after a child declined to lend) — none may reach
 * the removed child, which belongs to the caller once removeChild resolves.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { BlockError } from '../../src/errors.js';
import { FilterDriver } from '../../src/filter.js';
import { Quorum } from '../../src/quorum/quorum.js';
import type { IoOptions, ReadLease, WriteOptions } from '../../src/types.js';

const SIZE = 4096;

/** A child whose reads or writes can be held, then let go or failed. */
class Held extends FilterDriver {
  readonly ops: string[] = [];
  hold: { read?: boolean; write?: boolean } = {};
  failReads = false;
  declineLeases = false;
  readonly #waiting: { op: string; go: () => void }[] = [];

  release(op: 'read' | 'write'): void {
    for (let i = this.#waiting.length - 1; i >= 0; i--) if (this.#waiting[i].op === op) this.#waiting.splice(i, 1)[0].go();
  }
  get waiting(): number {
    return this.#waiting.length;
  }
  async #gate(op: 'read' | 'write', offset: number, length: number): Promise<void> {
    this.ops.push(`${op} ${offset}+${length}`);
    if (this.hold[op] === true) await new Promise<void>((go) => this.#waiting.push({ op, go }));
  }
  protected override async _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    await this.#gate('read', offset, target.length);
    if (this.failReads) throw new BlockError('EIO', 'held child: read failed');
    await super._read(offset, target, options);
  }
  protected override async _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    await this.#gate('write', offset, data.length);
    await super._write(offset, data, options);
  }
  protected override _leaseRead(offset: number, length: number, options: IoOptions): Promise<ReadLease | undefined> {
    return this.declineLeases ? Promise.resolve(undefined) : super._leaseRead(offset, length, options);
  }
}

const filled = (value: number, length = SIZE): Uint8Array => new Uint8Array(length).fill(value);
const turns = async (n = 20): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'timed out'> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<'timed out'>((r) => (t = setTimeout(() => r('timed out'), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

describe('addChild', () => {
  it('a sync that reads through the quorum (voting) while a write waits for the join completes; the write then reaches every child', async () => {
    const kids = [new MemoryDriver({ size: SIZE }), new MemoryDriver({ size: SIZE })];
    const q = new Quorum({ children: kids, threshold: 2 });
    await q.write(0, filled(1));
    const fresh = new MemoryDriver({ size: SIZE });
    let held: Promise<void> | undefined;
    const added = q.addChild(fresh, {
      sync: async () => {
        held = q.write(0, filled(2, 512));
        await fresh.write(0, await q.read(0, SIZE));
      },
    });
    expect(await within(added, 2000)).toBe('children.2');
    await held;
    for (const d of [...kids, fresh]) expect([...(await d.read(0, 513))]).toEqual([...filled(2, 512), 1]);
  });
});

describe('addChild queued behind another join', () => {
  const copyFrom = (q: Quorum, d: MemoryDriver) => async (): Promise<void> => {
    await d.write(0, await q.read(0, SIZE));
  };

  it('two joins whose syncs read through the quorum, and a write issued after both were asked for, all complete; the write reaches every child', async () => {
    const q = new Quorum({ children: [new MemoryDriver({ size: SIZE })], threshold: 1 });
    const d1 = new MemoryDriver({ size: SIZE });
    const d2 = new MemoryDriver({ size: SIZE });
    const add1 = q.addChild(d1, { sync: copyFrom(q, d1) });
    const add2 = q.addChild(d2, { sync: copyFrom(q, d2) });
    const write = q.write(0, filled(1, 512));
    expect(await within(Promise.all([add1, add2, write]), 2000)).toEqual(['children.1', 'children.2', undefined]);
    for (const d of q.members.map((m) => m.driver)) expect([...(await d.read(0, 513))]).toEqual([...filled(1, 512), 0]);
    expect(await within(q.close(), 2000)).toBeUndefined();
  });

  it('a join whose signal fires while it waits for an earlier join gives up at once (ECANCELED), is not added, and holds nothing up', async () => {
    const q = new Quorum({ children: [new MemoryDriver({ size: SIZE })], threshold: 1 });
    const d1 = new MemoryDriver({ size: SIZE });
    const d2 = new MemoryDriver({ size: SIZE });
    let finishSync!: () => void;
    const add1 = q.addChild(d1, { sync: () => new Promise<void>((r) => (finishSync = r)) });
    const abort = new AbortController();
    const add2 = q.addChild(d2, { signal: abort.signal });
    const write = q.write(0, filled(7, 512)); // issued after both: held until both joins end
    await turns();
    abort.abort();
    expect(await within(add2.catch((e: unknown) => e), 500)).toMatchObject({ code: 'ECANCELED' });
    finishSync();
    expect(await within(Promise.all([add1, write]), 2000)).toEqual(['children.1', undefined]);
    expect(q.members.map((m) => m.driver)).not.toContain(d2);
    expect((await d1.read(0, 1))[0]).toBe(7);
  });

  it('a join whose signal has already fired is refused (ECANCELED) and not added', async () => {
    const q = new Quorum({ children: [new MemoryDriver({ size: SIZE })], threshold: 1 });
    const d = new MemoryDriver({ size: SIZE });
    await expect(q.addChild(d, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ECANCELED' });
    expect(q.members.map((m) => m.driver)).not.toContain(d);
  });

  it('a write with a signal issued during the first join, before the second was asked for, goes out between them', async () => {
    const q = new Quorum({ children: [new MemoryDriver({ size: SIZE })], threshold: 1 });
    const d1 = new MemoryDriver({ size: SIZE });
    const d2 = new MemoryDriver({ size: SIZE });
    const add1 = q.addChild(d1, { sync: copyFrom(q, d1) });
    const write = q.write(0, filled(3, 512), { signal: new AbortController().signal });
    const add2 = q.addChild(d2, { sync: copyFrom(q, d2) });
    expect(await within(Promise.all([add1, write, add2]), 2000)).toEqual(['children.1', undefined, 'children.2']);
    // d2's sync copied the write: it went out before the second join began.
    for (const d of q.members.map((m) => m.driver)) expect([...(await d.read(0, 513))]).toEqual([...filled(3, 512), 0]);
  });

  it('held overlapping writes go out in the order they were issued, with or without a signal', async () => {
    for (const signals of [[true, false], [false, true], [true, true]]) {
      const q = new Quorum({ children: [new MemoryDriver({ size: SIZE }), new MemoryDriver({ size: SIZE })], threshold: 2 });
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const joining = q.addChild(new MemoryDriver({ size: SIZE }), { sync: () => gate });
      await new Promise((r) => setTimeout(r, 1));
      const writes = [1, 2].map((v, i) => q.write(0, filled(v, 512), signals[i] ? { signal: new AbortController().signal } : {}));
      open();
      await Promise.all([joining, ...writes]);
      for (const d of q.members.map((m) => m.driver)) expect((await d.read(0, 1))[0], `signals ${signals.join('/')}`).toBe(2);
    }
  });

  it('a held write aborted while held fails with ECANCELED and sends nothing; the others go out', async () => {
    const q = new Quorum({ children: [new MemoryDriver({ size: SIZE })], threshold: 1 });
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const joining = q.addChild(new MemoryDriver({ size: SIZE }), { sync: () => gate });
    const abort = new AbortController();
    const first = q.write(0, filled(5, 512), { signal: abort.signal });
    const second = q.write(512, filled(6, 512));
    abort.abort();
    await expect(first).rejects.toMatchObject({ code: 'ECANCELED' });
    open();
    await Promise.all([joining, second]);
    for (const d of q.members.map((m) => m.driver)) expect([...(await d.read(511, 2))]).toEqual([0, 6]);
  });
});

describe('joins and writes interleaved (property)', () => {
  type Step = { kind: 'write'; slot: number; value: number; signal: boolean; gap: number } | { kind: 'add'; gap: number };
  const stepArb: fc.Arbitrary<Step> = fc.oneof(
    fc.record({ kind: fc.constant('write' as const), slot: fc.nat(3), value: fc.integer({ min: 1, max: 255 }), signal: fc.boolean(), gap: fc.nat(2) }),
    fc.record({ kind: fc.constant('add' as const), gap: fc.nat(2) }),
  );
  const gapOf = (gap: number): Promise<void> =>
    gap === 0 ? Promise.resolve() : gap === 1 ? new Promise((r) => queueMicrotask(() => r())) : new Promise((r) => setImmediate(r));

  it('everything completes; every child ends identical, each slot holding the last write issued to it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 10 }), async (steps) => {
        const q = new Quorum({ children: [new MemoryDriver({ size: SIZE })], threshold: 1 });
        const want = new Uint8Array(SIZE);
        const pending: Promise<unknown>[] = [];
        for (const step of steps) {
          await gapOf(step.gap);
          if (step.kind === 'write') {
            const data = filled(step.value, 512);
            want.set(data, step.slot * 512);
            pending.push(q.write(step.slot * 512, data, step.signal ? { signal: new AbortController().signal } : {}));
          } else {
            const d = new MemoryDriver({ size: SIZE });
            pending.push(q.addChild(d, { sync: async () => d.write(0, await q.read(0, SIZE)) }));
          }
        }
        expect(await within(Promise.all(pending), 3000), 'every write and join settles').not.toBe('timed out');
        for (const m of q.members) expect([...(await m.driver.read(0, SIZE))], m.name).toEqual([...want]);
        await q.close();
      }),
      { numRuns: 150 },
    );
  });
});

describe('removeChild', () => {
  it('a fifo read falling back after a failure skips a child removed meanwhile', async () => {
    const a = new Held(new MemoryDriver({ size: SIZE }));
    const b = new MemoryDriver({ size: SIZE });
    const c = new MemoryDriver({ size: SIZE });
    const q = new Quorum({ children: [a, b, c], threshold: 1, readPattern: 'fifo' });
    await q.write(0, filled(7));
    const reports: string[] = [];
    q.on('report-bad', (e) => reports.push(e.child));
    a.hold.read = true;
    a.failReads = true;
    const read = q.read(0, 16);
    await turns();
    const removed = await q.removeChild(b);
    await removed.write(0, filled(99, 16)); // the caller's now
    a.release('read');
    expect([...(await read)]).toEqual([...filled(7, 16)]);
    expect(reports).toEqual(['children.0']);
  });

  it('a rewriteCorrupted repair decided before the removal does not land on the removed child', async () => {
    const a = new MemoryDriver({ size: SIZE });
    const b = new Held(new MemoryDriver({ size: SIZE }));
    const c = new Held(new MemoryDriver({ size: SIZE }));
    const q = new Quorum({ children: [a, b, c], threshold: 2, rewriteCorrupted: true });
    await q.write(0, filled(7));
    await b.child.write(0, filled(66, 16)); // a corrupt copy
    b.ops.length = 0;
    c.hold.read = true;
    const read = q.read(0, 16);
    await turns();
    const removing = q.removeChild(b);
    c.release('read');
    const removed = await removing;
    await read;
    await turns();
    expect(b.ops.filter((o) => o.startsWith('write'))).toEqual([]);
    await removed.write(0, filled(99, 16));
    await turns();
    expect((await b.child.read(0, 1))[0]).toBe(99);
  });

  it('the copy re-read after a child declined to lend does not go to a child removed while leases were asked for', async () => {
    const a = new MemoryDriver({ size: SIZE });
    const b = new Held(new MemoryDriver({ size: SIZE }));
    const c = new Held(new MemoryDriver({ size: SIZE }));
    c.declineLeases = true;
    const q = new Quorum({ children: [a, b, c], threshold: 2 });
    await q.write(0, filled(7));
    b.ops.length = 0;
    let lend!: () => void;
    const leaseAsked = new Promise<void>((r) => (lend = r));
    const original = b.leaseRead.bind(b);
    b.leaseRead = async (offset, length, options) => {
      await leaseAsked;
      return original(offset, length, options);
    };
    const read = q.read(0, 16);
    await turns();
    const removing = q.removeChild(b);
    lend();
    expect([...(await read)]).toEqual([...filled(7, 16)]);
    await removing;
    expect(b.ops).toEqual([]);
  });
});
