/**
 * Delay: requests wait the configured time before reaching the child, and can be aborted.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { Delay, type DelayTable } from '../../src/filters/delay.js';
import { BLOCK_OPS, type BlockOp } from '../../src/filters/ops.js';
import { Stats } from '../../src/filters/stats.js';
import { blockDriverSuite } from '../conformance/index.js';
import { Reshape } from './helpers.js';
import { FAKED_TIMERS } from '../helpers/fake-timers.js';

blockDriverSuite({
  name: 'Delay (0-1 ms)',
  factory: ({ size }) => new Delay(new MemoryDriver({ size }), { delays: () => (Math.random() < 0.5 ? 0 : 1) }),
});
blockDriverSuite({ name: 'Delay (zero table)', factory: ({ size }) => new Delay(new MemoryDriver({ size }), { delays: {} }) });

/** Starts one request of kind `op` and returns its promise. */
function start(d: Delay, op: BlockOp, options: { signal?: AbortSignal } = {}): Promise<unknown> {
  switch (op) {
    case 'read':
      return d.read(10, 20, options);
    case 'write':
      return d.write(10, new Uint8Array(20).fill(1), options);
    case 'flush':
      return d.flush(options);
    case 'discard':
      return d.discard(10, 20, options);
    case 'writeZeroes':
      return d.writeZeroes(10, 20, options);
    case 'blockStatus':
      return d.blockStatus(10, 20, options);
    case 'cache':
      return d.cache(10, 20, options);
  }
}

/** A child that counts what reaches it and accepts cache() too. */
const counted = (): Stats => new Stats(new Reshape(new MemoryDriver({ size: 4096 }), { caps: { canCache: true } }));

describe('Delay', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: FAKED_TIMERS }));
  afterEach(() => vi.useRealTimers());

  it('holds each operation back exactly its configured time before the child sees it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...BLOCK_OPS), fc.integer({ min: 1, max: 500 }), async (op, ms) => {
        const child = counted();
        const d = new Delay(child, { delays: { [op]: ms } });
        let done = false;
        const p = start(d, op).then(() => (done = true));
        await vi.advanceTimersByTimeAsync(ms - 1);
        expect(child.snapshot()[op].calls + (done ? 1 : 0)).toBe(0);
        await vi.advanceTimersByTimeAsync(1);
        await p;
        expect(child.snapshot()[op].calls).toBe(1);
        // Operations without an entry are not delayed at all: no timer is created.
        for (const other of BLOCK_OPS.filter((o) => o !== op)) {
          const q = start(d, other);
          expect(vi.getTimerCount()).toBe(0);
          await q;
        }
        await d.close();
      }),
      { numRuns: 40 },
    );
  });

  it('asks a delay function with the request and waits what it answers', async () => {
    const seen: [BlockOp, number, number][] = [];
    const child = counted();
    const d = new Delay(child, { delays: (op, offset, length) => (seen.push([op, offset, length]), offset === 10 ? 50 : 0) });
    const p = d.read(10, 20);
    await d.read(0, 5);
    expect(child.snapshot().read.calls).toBe(1);
    await vi.advanceTimersByTimeAsync(50);
    await p;
    expect(child.snapshot().read.calls).toBe(2);
    await d.flush();
    expect(seen).toEqual([
      ['read', 10, 20],
      ['read', 0, 5],
      ['flush', 0, 0],
    ]);
    await d.close();
  });

  it('an abort while waiting fails the request with ECANCELED, clears its timer, and the child never sees it', async () => {
    for (const op of BLOCK_OPS) {
      const child = counted();
      const d = new Delay(child, { delays: { [op]: 1000 } });
      const ac = new AbortController();
      const p = start(d, op, { signal: ac.signal });
      await vi.advanceTimersByTimeAsync(10);
      ac.abort(new Error('user gave up'));
      await expect(p).rejects.toMatchObject({ code: 'ECANCELED', details: { op } });
      expect(vi.getTimerCount()).toBe(0);
      await vi.advanceTimersByTimeAsync(2000);
      expect(child.snapshot()[op].calls).toBe(0);
      expect(d.inFlight).toBe(0);
      await d.close();
    }
  });

  it('setDelays changes the delay of later requests', async () => {
    const child = counted();
    const d = new Delay(child, { delays: { write: 100 } });
    d.setDelays({ write: 0 });
    await d.write(0, new Uint8Array(1));
    expect(child.snapshot().write.calls).toBe(1);
    d.setDelays(() => 7);
    expect(typeof d.delays).toBe('function');
    const p = d.write(0, new Uint8Array(1));
    await vi.advanceTimersByTimeAsync(7);
    await p;
    expect(child.snapshot().write.calls).toBe(2);
    await d.close();
  });

  it('close waits for delayed requests to finish', async () => {
    const child = counted();
    const d = new Delay(child, { delays: { write: 100 } });
    const w = d.write(0, new Uint8Array([5]));
    let closed = false;
    const c = d.close().then(() => (closed = true));
    await vi.advanceTimersByTimeAsync(99);
    expect(closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await w;
    await c;
    expect(child.snapshot().write.calls).toBe(1);
    expect(child.state).toBe('closed');
  });

  it('rejects bad delays: tables at construction, function answers per request (EINVAL)', async () => {
    const mem = new MemoryDriver({ size: 100 });
    const bad: unknown[] = [undefined, null, 5, { read: -1 }, { write: Number.NaN }, { read: Infinity }, { fsync: 1 }, { read: '5' }];
    for (const delays of bad) expect(() => new Delay(mem, { delays: delays as DelayTable })).toThrow(/delay|operation/);
    expect(() => new Delay(mem, { delays: { fsync: 1 } as DelayTable })).toThrow(RangeError);
    expect(() => new Delay(mem, { delays: { read: -1 } })).toThrow(RangeError);
    const d = new Delay(mem, { delays: (op) => (op === 'read' ? -5 : Number.NaN) });
    await expect(d.read(0, 1)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(d.flush()).rejects.toMatchObject({ code: 'EINVAL' });
    await d.close();
  });
});

describe('Delay longer than Node timers take (real timers)', () => {
  it('a delay of about 35 days is not cut to 1 ms', async () => {
    const d = new Delay(new MemoryDriver({ size: 4096 }), { delays: { read: 3e9 } });
    const controller = new AbortController();
    let settled = false;
    const read = d.read(0, 16, { signal: controller.signal }).then(
      () => ((settled = true), 'read'),
      (e: { code: string }) => ((settled = true), e.code),
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(settled).toBe(false);
    controller.abort();
    expect(await read).toBe('ECANCELED');
    await d.close();
  });
});
