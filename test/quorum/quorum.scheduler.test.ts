/**
 * Proof (c): fast-check's scheduler decides when each child request starts and when it completes,
 * so children finish in adversarial orders. Results and events must not depend on that order, and
 * rewriteCorrupted must never undo a caller's concurrent write.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BlockDriver } from '../../src/driver.js';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { FaultInjector } from '../../src/filters/fault-injector.js';
import { FilterDriver } from '../../src/filter.js';
import { Quorum } from '../../src/quorum/quorum.js';
import type { IoOptions, WriteOptions } from '../../src/types.js';
import { quorumCaseArb } from '../../src/testing/quorum.js';
import { expectedEvents, record, stage, type Rig } from './harness.js';
import { hex, modelFifoRead, modelQuorumRead } from './model.js';

/** Holds every request at its start and at its end until the scheduler lets it go. */
class Scheduled extends FilterDriver {
  constructor(child: BlockDriver, readonly s: fc.Scheduler, name: string) {
    super(child, { name });
  }
  async #gate<T>(label: string, run: () => Promise<T>): Promise<T> {
    await this.s.schedule(Promise.resolve(), `${this.name} ${label} start`);
    const result = await run();
    await this.s.schedule(Promise.resolve(), `${this.name} ${label} end`);
    return result;
  }
  protected override _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    return this.#gate(`read ${offset}`, () => super._read(offset, target, options));
  }
  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    return this.#gate(`write ${offset}`, () => super._write(offset, data, options));
  }
  protected override _flush(options: IoOptions): Promise<void> {
    return this.#gate('flush', () => super._flush(options));
  }
}

function scheduledRig(s: fc.Scheduler, n: number, size: number, options: Omit<ConstructorParameters<typeof Quorum>[0], 'children'>): Rig {
  const mems = Array.from({ length: n }, () => new MemoryDriver({ size }));
  const faults = mems.map((m) => new FaultInjector(m));
  const quorum = new Quorum({ ...options, children: faults.map((f, i) => new Scheduled(f, s, `sched${i}`)) });
  return { quorum, mems, faults, events: record(quorum) };
}

describe('Quorum under adversarial completion orders (fc.scheduler)', () => {
  it('reads give the same result and events in every order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), quorumCaseArb({ readPatterns: ['quorum', 'quorum', 'fifo'] }), async (s, c) => {
        const n = c.specs.length;
        const r = scheduledRig(s, n, 64, { threshold: c.threshold, readPattern: c.readPattern, rewriteCorrupted: c.rewriteCorrupted });
        const { outcomes, stored } = await stage(r, c, 8);
        const len = c.good.length;
        const exp = c.readPattern === 'quorum' ? modelQuorumRead(outcomes, c.threshold, c) : modelFifoRead(outcomes, [...Array(n).keys()]);
        const pending = r.quorum.read(8, len).then(
          (d) => ({ ok: true, hex: hex(d) }),
          (e: { code: string }) => ({ ok: false, code: e.code }),
        );
        await s.waitIdle();
        expect(await pending).toEqual(exp.ok ? { ok: true, hex: exp.dataHex } : { ok: false, code: exp.code });
        expect(r.events).toEqual(expectedEvents(exp, 'read', 8, len));
        for (let i = 0; i < n; i++) {
          expect(hex(await r.mems[i].read(8, len))).toBe(exp.rewrite.includes(i) ? exp.dataHex : hex(stored[i]));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a repair never lands after a concurrent caller write, and still happens when nothing overlaps', async () => {
    const SIZE = 32;
    const arb = fc.record({
      read: fc.record({ offset: fc.integer({ min: 0, max: 15 }), length: fc.integer({ min: 1, max: 16 }) }),
      write: fc.record({ offset: fc.integer({ min: 0, max: 15 }), length: fc.integer({ min: 1, max: 16 }) }),
      writeFirst: fc.boolean(),
    });
    let repaired = 0;
    let raced = 0;
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), arb, async (s, { read, write, writeFirst }) => {
        const r = scheduledRig(s, 3, SIZE, { threshold: 2, rewriteCorrupted: true });
        const old = new Uint8Array(SIZE).fill(1);
        for (const m of r.mems) await m.write(0, old);
        await r.mems[2].write(0, new Uint8Array(SIZE).fill(9)); // child 2 is corrupted everywhere
        const fresh = new Uint8Array(write.length).fill(7);
        const ops: (() => Promise<unknown>)[] = [
          () => r.quorum.read(read.offset, read.length).catch(() => undefined),
          () => r.quorum.write(write.offset, fresh),
        ];
        if (writeFirst) ops.reverse();
        // The second request is issued at a moment the scheduler picks: before, during or after the first.
        const all = Promise.all([ops[0](), s.schedule(Promise.resolve(), 'issue second').then(ops[1])]);
        await s.waitIdle();
        await all;
        const overlap = read.offset < write.offset + write.length && write.offset < read.offset + read.length;
        for (let i = 0; i < 3; i++) {
          // The caller's write is the last word on its range, on every child.
          expect(hex(await r.mems[i].read(write.offset, write.length))).toBe(hex(fresh));
        }
        if (!overlap) {
          // Nothing raced: the read repaired child 2 over its whole range.
          expect(hex(await r.mems[2].read(read.offset, read.length))).toBe(hex(old.subarray(0, read.length)));
          repaired++;
        } else raced++;
      }),
      { numRuns: 300 },
    );
    expect(repaired).toBeGreaterThan(20);
    expect(raced).toBeGreaterThan(20);
  });
});
