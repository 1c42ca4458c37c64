/**
 * fifo, round-robin and least-pending reads: which child serves each read, and the shared
 * fallback on failure.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { Delay } from '../../src/filters/delay.js';
import { FaultInjector } from '../../src/filters/fault-injector.js';
import { Quorum } from '../../src/quorum/quorum.js';
import type { ReadPattern } from '../../src/quorum/vote.js';
import { ReadCounter, record } from './harness.js';

function mirrors(n: number, readPattern: ReadPattern) {
  const mems = Array.from({ length: n }, (_, i) => new MemoryDriver({ size: 4096, name: `m${i}` }));
  const faults = mems.map((m) => new FaultInjector(m));
  const counters = faults.map((f) => new ReadCounter(f));
  const q = new Quorum({ children: counters, threshold: 1, readPattern });
  return { q, mems, faults, counters, events: record(q) };
}

describe('fifo', () => {
  it('reads only child 0 while it works', async () => {
    const { q, counters } = mirrors(3, 'fifo');
    for (let i = 0; i < 5; i++) await q.read(0, 512);
    expect(counters.map((c) => c.reads)).toEqual([5, 0, 0]);
  });

  it('falls back in order, reporting each failure; fails with the last error when all fail, without a failure event', async () => {
    const { q, faults, mems, events } = mirrors(3, 'fifo');
    await mems[2].write(0, new Uint8Array([9]));
    faults[0].addRule({ ops: ['read'], error: 'ETIMEDOUT' });
    faults[1].addRule({ ops: ['read'], error: 'ENOMEM' });
    expect([...(await q.read(0, 1))]).toEqual([9]);
    expect(events.map((e) => (e.kind === 'report-bad' ? [e.child, e.code] : e.kind))).toEqual([
      ['children.0', 'ETIMEDOUT'],
      ['children.1', 'ENOMEM'],
    ]);
    events.length = 0;
    faults[2].addRule({ ops: ['read'], error: 'EPERM' });
    await expect(q.read(0, 1)).rejects.toMatchObject({ code: 'EPERM', message: expect.stringContaining('children.2') });
    expect(events.map((e) => e.kind)).toEqual(['report-bad', 'report-bad', 'report-bad']);
  });

  it('does not vote: a corrupted child 0 is read as is (fifo trusts its children)', async () => {
    const { q, mems } = mirrors(2, 'fifo');
    await mems[0].write(0, new Uint8Array([1]));
    expect([...(await q.read(0, 1))]).toEqual([1]);
  });

  it('an abort between attempts ends the read with ECANCELED, tries no further child and blames none', async () => {
    const { q, faults, counters, events } = mirrors(3, 'fifo');
    const ac = new AbortController();
    faults[0].addRule({ ops: ['read'], error: 'EIO' });
    faults[0].on('fault', () => ac.abort());
    await expect(q.read(0, 1, { signal: ac.signal })).rejects.toMatchObject({ code: 'ECANCELED' });
    // Once the caller gave up, no failure can be told apart from the abort: nobody is reported.
    expect(events).toEqual([]);
    expect(counters.map((c) => c.reads)).toEqual([1, 0, 0]);
  });
});

describe('round-robin', () => {
  it('spreads reads evenly over the children, in turn', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 4 }), async (n, rounds) => {
        const { q, counters } = mirrors(n, 'round-robin');
        const served: number[] = [];
        for (let i = 0; i < n * rounds; i++) {
          const before = counters.map((c) => c.reads);
          await q.read(0, 16);
          served.push(counters.findIndex((c, k) => c.reads > before[k]));
        }
        expect(served).toEqual(Array.from({ length: n * rounds }, (_, i) => i % n));
      }),
      { numRuns: 40 },
    );
  });

  it('falls back to the next child in turn on failure', async () => {
    const { q, faults, counters, events } = mirrors(3, 'round-robin');
    faults[1].failAll('EIO');
    for (let i = 0; i < 3; i++) await q.read(0, 16);
    // Turns start at 0, 1, 2; the turn of child 1 falls back to child 2.
    expect(counters.map((c) => c.reads)).toEqual([1, 1, 2]);
    expect(events.filter((e) => e.kind === 'report-bad').map((e) => (e.kind === 'report-bad' ? e.child : ''))).toEqual(['children.1']);
  });
});

describe('least-pending', () => {
  it('sends each read to the child with the fewest requests in flight, ties to the lowest index', async () => {
    const mems = Array.from({ length: 3 }, () => new MemoryDriver({ size: 4096 }));
    const slow = mems.map((m) => new Delay(m, { delays: { read: 20 } }));
    const counters = slow.map((d) => new ReadCounter(d));
    const q = new Quorum({ children: counters, threshold: 1, readPattern: 'least-pending' });
    const reads = Array.from({ length: 4 }, () => q.read(0, 16));
    expect(counters.map((c) => c.reads)).toEqual([2, 1, 1]);
    expect(q.members.map((m) => m.pending)).toEqual([2, 1, 1]);
    await Promise.all(reads);
    expect(q.members.map((m) => m.pending)).toEqual([0, 0, 0]);
    await q.read(0, 16);
    expect(counters.map((c) => c.reads)).toEqual([3, 1, 1]);
    await q.close();
  });

  it('falls back to the least busy of the others, not the next by index', async () => {
    const mems = Array.from({ length: 3 }, () => new MemoryDriver({ size: 4096 }));
    const fault = new FaultInjector(mems[0]);
    const counters = [new ReadCounter(fault), new ReadCounter(new Delay(mems[1], { delays: { read: 300 } })), new ReadCounter(mems[2])];
    const q = new Quorum({ children: counters, threshold: 1, readPattern: 'least-pending' });
    // Six reads at once go 0, 1, 2, 0, 1, 2; the fast children finish, child 1 keeps two pending.
    const reads = Array.from({ length: 6 }, () => q.read(0, 16));
    const slow = [reads[1], reads[4]];
    await Promise.all([reads[0], reads[2], reads[3], reads[5]]);
    expect(q.members.map((m) => m.pending)).toEqual([0, 2, 0]);
    fault.failAll('EIO');
    // Child 0 is picked (a tie with child 2, lowest index) and fails: child 2 (0 pending) serves, not child 1 (2 pending).
    await q.read(0, 16);
    expect(counters.map((c) => c.reads)).toEqual([3, 2, 3]);
    await Promise.all(slow);
    await q.close();
  });

  it('falls back when the least busy child fails', async () => {
    const { q, faults, events } = mirrors(2, 'least-pending');
    faults[0].failAll('ENOSPC');
    await q.read(0, 16);
    expect(events).toHaveLength(1);
  });
});

describe('quorum reads that fail', () => {
  it('say the children disagree when enough succeeded but no version has threshold votes', async () => {
    const mems = Array.from({ length: 3 }, () => new MemoryDriver({ size: 4096 }));
    const faults = mems.map((m) => new FaultInjector(m));
    const q = new Quorum({ children: faults, threshold: 2, readPattern: 'quorum' });
    await mems[1].write(0, new Uint8Array([1]));
    await mems[2].write(0, new Uint8Array([2]));
    faults[0].failAll('ENOSPC');
    // Two of three answered (= threshold), with different bytes: no majority, not "too few succeeded".
    await expect(q.read(0, 1)).rejects.toMatchObject({ code: 'EIO', message: expect.stringMatching(/disagree/) });
    await mems[2].write(0, new Uint8Array([1]));
    expect([...(await q.read(0, 1))]).toEqual([1]);
    await q.close();
  });
});
