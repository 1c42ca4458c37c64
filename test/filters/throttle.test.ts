/**
 * Throttle: token-bucket accounting, FIFO order, aborts while queued, and runtime limit changes.
 * Time is fake (setTimeout and performance.now), so nothing here depends on the machine's speed.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { Stats } from '../../src/filters/stats.js';
import { Throttle, type ThrottleLimits } from '../../src/filters/throttle.js';
import { blockDriverSuite } from '../conformance/index.js';
import { FAKED_TIMERS } from '../helpers/fake-timers.js';

blockDriverSuite({
  name: 'Throttle (generous)',
  factory: ({ size }) => new Throttle(new MemoryDriver({ size }), { totalBps: 1e12, readIops: 1e9, writeIops: 1e9 }),
});
// Tight enough that the suite's bursts queue now and then, so the queue path runs on real timers.
blockDriverSuite({
  name: 'Throttle (queueing)',
  factory: ({ size }) => new Throttle(new MemoryDriver({ size }), { totalIops: 50_000, burstSeconds: 0.002 }),
});

const SIZE = 1 << 20;
/** A throttle over a counting child. */
function make(limits: ThrottleLimits): { t: Throttle; child: Stats } {
  const child = new Stats(new MemoryDriver({ size: SIZE }));
  return { t: new Throttle(child, limits), child };
}
const reached = (child: Stats): number => {
  const s = child.snapshot();
  return s.read.calls + s.write.calls + s.writeZeroes.calls + s.discard.calls;
};

describe('Throttle', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: FAKED_TIMERS }));
  afterEach(() => vi.useRealTimers());

  it('IOPS: a full bucket lets a burst through, then one request per 1/rate seconds', async () => {
    const { t, child } = make({ readIops: 10 });
    const reads = Array.from({ length: 30 }, (_, i) => t.read(i, 1));
    await vi.advanceTimersByTimeAsync(0);
    expect(reached(child)).toBe(10);
    expect(t.queued).toBe(20);
    await vi.advanceTimersByTimeAsync(99);
    expect(reached(child)).toBe(10);
    await vi.advanceTimersByTimeAsync(1);
    expect(reached(child)).toBe(11);
    await vi.advanceTimersByTimeAsync(900);
    expect(reached(child)).toBe(20);
    await vi.advanceTimersByTimeAsync(1000);
    expect(reached(child)).toBe(30);
    await Promise.all(reads);
    expect(vi.getTimerCount()).toBe(0);
    await t.close();
  });

  it('a request larger than the burst goes when the bucket is full, and its debt delays the next', async () => {
    const { t, child } = make({ readBps: 1000 });
    await t.read(0, 5000);
    const next = t.read(0, 1);
    await vi.advanceTimersByTimeAsync(4000);
    expect(reached(child)).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await next;
    expect(reached(child)).toBe(2);
    await t.close();
  });

  it('over any time, admitted work stays within burst + rate × time + one request, and all of it completes in FIFO order', async () => {
    const bps = fc.option(fc.integer({ min: 200, max: 5000 }), { nil: undefined });
    const iops = fc.option(fc.integer({ min: 1, max: 50 }), { nil: undefined });
    await fc.assert(
      fc.asyncProperty(
        fc.record({ readBps: bps, writeBps: bps, totalBps: bps, readIops: iops, writeIops: iops, totalIops: iops }),
        fc.constantFrom(0.05, 0.5, 1, 2),
        fc.array(fc.record({ write: fc.boolean(), bytes: fc.integer({ min: 1, max: 3000 }), at: fc.integer({ min: 0, max: 100 }) }), {
          minLength: 1,
          maxLength: 25,
        }),
        async (limits, burstSeconds, requests) => {
          // The fake clock runs on across runs: measure from this run's start.
          const t0 = performance.now();
          const { t, child } = make({ ...limits, burstSeconds });
          const order: Record<'read' | 'write', number[]> = { read: [], write: [] };
          const pending: Promise<unknown>[] = [];
          const arrivals = [...requests].sort((a, b) => a.at - b.at);
          const maxBytes = Math.max(...requests.map((r) => r.bytes));
          // Slowest possible finish: every bucket drains its whole load one after another.
          let horizon = 200 + requests.length * 2;
          for (const [key, rate] of Object.entries(limits)) {
            if (rate === undefined) continue;
            const load = requests.reduce((sum, r) => {
              const mine = key.startsWith('total') || key.startsWith(r.write ? 'write' : 'read');
              return sum + (mine ? (key.endsWith('Bps') ? r.bytes : 1) : 0);
            }, 0);
            horizon += (load / rate) * 1000;
          }
          const check = (): void => {
            const now = performance.now() - t0;
            const s = child.snapshot();
            const spent = {
              readBps: s.read.bytes,
              writeBps: s.write.bytes,
              totalBps: s.read.bytes + s.write.bytes,
              readIops: s.read.calls,
              writeIops: s.write.calls,
              totalIops: s.read.calls + s.write.calls,
            };
            for (const [key, rate] of Object.entries(limits)) {
              if (rate === undefined) continue;
              const one = key.endsWith('Bps') ? maxBytes : 1;
              expect(spent[key as keyof typeof spent]).toBeLessThanOrEqual(rate * burstSeconds + (rate * now) / 1000 + one + 1e-6);
            }
          };
          // Arrivals over the first 100 ms, in 5 ms steps.
          let next = 0;
          for (let now = 0; now <= 100; now += 5) {
            while (next < arrivals.length && arrivals[next].at <= now) {
              const r = arrivals[next];
              const seq = next++;
              const p = r.write ? t.write(0, new Uint8Array(r.bytes)) : t.read(0, r.bytes);
              pending.push(p.then(() => order[r.write ? 'write' : 'read'].push(seq)));
            }
            await vi.advanceTimersByTimeAsync(0);
            check();
            await vi.advanceTimersByTimeAsync(5);
            check();
          }
          // Then from one throttle wake-up to the next: each lets at least one request go.
          for (let i = 0; i < 4 * requests.length + 10 && vi.getTimerCount() > 0; i++) {
            await vi.advanceTimersToNextTimerAsync();
            check();
          }
          expect(t.queued).toBe(0);
          expect(performance.now() - t0).toBeLessThanOrEqual(horizon);
          await Promise.all(pending);
          for (const dir of ['read', 'write'] as const) expect(order[dir]).toEqual([...order[dir]].sort((a, b) => a - b));
          expect(vi.getTimerCount()).toBe(0);
          await t.close();
        },
      ),
      { numRuns: 100 },
    );
  });

  it('a read held by a read limit does not hold up writes', async () => {
    const { t, child } = make({ readIops: 1, burstSeconds: 1 });
    await t.read(0, 1);
    const read = t.read(0, 1);
    await vi.advanceTimersByTimeAsync(0);
    await t.write(0, new Uint8Array(1));
    expect(child.snapshot().write.calls).toBe(1);
    expect(child.snapshot().read.calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    await read;
    await t.close();
  });

  it('a request held by a total limit keeps its place: younger requests of the other kind wait behind it', async () => {
    const { t, child } = make({ totalIops: 1, burstSeconds: 1 });
    await t.write(0, new Uint8Array(1));
    const done: string[] = [];
    const read = t.read(0, 1).then(() => done.push('read'));
    const write = t.write(0, new Uint8Array(1)).then(() => done.push('write'));
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toEqual(['read']);
    await vi.advanceTimersByTimeAsync(1000);
    expect(done).toEqual(['read', 'write']);
    await Promise.all([read, write]);
    expect(child.snapshot().write.calls).toBe(2);
    await t.close();
  });

  it('discard and write-zeroes count as writes but carry no bytes; flush and block status pass freely', async () => {
    const { t, child } = make({ writeBps: 1, writeIops: 2, readIops: 1, burstSeconds: 1 });
    await t.writeZeroes(0, SIZE);
    await t.discard(0, SIZE);
    expect(child.snapshot().writeZeroes.calls + child.snapshot().discard.calls).toBe(2);
    const third = t.writeZeroes(0, 10);
    await vi.advanceTimersByTimeAsync(0);
    expect(child.snapshot().writeZeroes.calls).toBe(1);
    await t.read(0, 1);
    const heldRead = t.read(0, 1);
    await t.flush();
    await t.blockStatus(0, SIZE);
    expect(child.snapshot().flush.calls).toBe(1);
    expect(child.snapshot().blockStatus.calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    await Promise.all([third, heldRead]);
    expect(child.snapshot().writeZeroes.calls).toBe(2);
    await t.close();
  });

  it('a queued request can be aborted (ECANCELED) or time out (ETIMEDOUT); it never reaches the child and the queue moves on', async () => {
    const { t, child } = make({ writeIops: 1, burstSeconds: 1 });
    await t.write(0, new Uint8Array([1]));
    const ac = new AbortController();
    const tc = new AbortController();
    const aborted = t.write(0, new Uint8Array([2]), { signal: ac.signal });
    const timedOut = t.discard(0, 10, { signal: tc.signal });
    const after = t.write(0, new Uint8Array([3]));
    await vi.advanceTimersByTimeAsync(10);
    expect(t.queued).toBe(3);
    ac.abort();
    tc.abort(new DOMException('deadline', 'TimeoutError'));
    await expect(aborted).rejects.toMatchObject({ code: 'ECANCELED', details: { op: 'write', offset: 0, length: 1 } });
    await expect(timedOut).rejects.toMatchObject({ code: 'ETIMEDOUT', details: { op: 'discard', offset: 0, length: 10 } });
    expect(t.queued).toBe(1);
    await vi.advanceTimersByTimeAsync(990);
    await after;
    expect(child.snapshot().write.calls).toBe(2);
    expect(child.snapshot().discard.calls).toBe(0);
    expect([...(await t.read(0, 1))]).toEqual([3]);
    await t.close();
  });

  it('setLimits applies at once to queued requests, and lifting every limit releases the queue', async () => {
    const { t, child } = make({ readIops: 1, burstSeconds: 1 });
    await t.read(0, 1);
    const held = Array.from({ length: 5 }, () => t.read(0, 1));
    await vi.advanceTimersByTimeAsync(0);
    expect(t.queued).toBe(5);
    t.setLimits({ readIops: 2, burstSeconds: 1 });
    expect(t.throttleLimits).toEqual({ readIops: 2, burstSeconds: 1 });
    await vi.advanceTimersByTimeAsync(500);
    expect(child.snapshot().read.calls).toBe(2);
    t.setLimits({});
    expect(t.throttleLimits).toEqual({ burstSeconds: 1 });
    await vi.advanceTimersByTimeAsync(0);
    expect(t.queued).toBe(0);
    await Promise.all(held);
    expect(child.snapshot().read.calls).toBe(6);
    expect(vi.getTimerCount()).toBe(0);
    await t.close();
  });

  it('close waits for queued requests to be served', async () => {
    const { t, child } = make({ writeIops: 1, burstSeconds: 1 });
    await t.write(0, new Uint8Array(1));
    const w = t.write(0, new Uint8Array(1));
    let closed = false;
    const c = t.close().then(() => (closed = true));
    await expect(t.write(0, new Uint8Array(1))).rejects.toMatchObject({ code: 'ESHUTDOWN' });
    await vi.advanceTimersByTimeAsync(999);
    expect(closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await w;
    await c;
    expect(child.snapshot().write.calls).toBe(2);
    expect(child.state).toBe('closed');
  });

  it('rejects bad limits with RangeError and keeps the old ones', () => {
    const { t } = make({ readBps: 10 });
    for (const bad of [{ readBps: -1 }, { writeIops: Number.NaN }, { totalBps: Infinity }, { burstSeconds: 0 }, { burstSeconds: -1 }]) {
      expect(() => t.setLimits(bad)).toThrow(RangeError);
    }
    expect(t.throttleLimits).toEqual({ readBps: 10, burstSeconds: 1 });
  });
});

describe('Throttle waits longer than Node timers take (real timers)', () => {
  it('a request owed about 48 days does not spin: no timer is re-armed every millisecond', async () => {
    const t = new Throttle(new MemoryDriver({ size: 8 << 20 }), { readBps: 1 });
    await t.read(0, 4 << 20); // a full bucket lets it through; it leaves about 4 Mi tokens of debt
    const realSetTimeout = globalThis.setTimeout;
    const armed = vi.spyOn(globalThis, 'setTimeout'); // counts, and calls through
    try {
      const controller = new AbortController();
      const waiting = t.read(0, 1, { signal: controller.signal }).catch((e: { code: string }) => e.code);
      await new Promise((r) => realSetTimeout(r, 100));
      // Node fires a timer over 2^31 − 1 ms after 1 ms: unclamped, ~100 timers in 100 ms.
      expect(armed.mock.calls.length).toBeLessThanOrEqual(2);
      controller.abort();
      expect(await waiting).toBe('ECANCELED');
    } finally {
      armed.mockRestore();
      await t.close();
    }
  });
});
