/**
 * Stats: counts, bytes, errors and latency per operation, checked against independent tallies.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import type { BlockErrorCode } from '../../src/errors.js';
import { Delay } from '../../src/filters/delay.js';
import { FaultInjector } from '../../src/filters/fault-injector.js';
import { BLOCK_OPS, type BlockOp } from '../../src/filters/ops.js';
import { Stats } from '../../src/filters/stats.js';
import { blockDriverSuite } from '../conformance/index.js';
import { Reshape } from './helpers.js';

blockDriverSuite({ name: 'Stats', factory: ({ size }) => new Stats(new MemoryDriver({ size })) });

const SIZE = 4096;
afterEach(() => vi.useRealTimers());

describe('Stats', () => {
  it('tallies calls, bytes of successful requests, and errors by code, for every operation', async () => {
    const reqArb = fc.record({
      op: fc.constantFrom(...BLOCK_OPS),
      at: fc.nat({ max: SIZE - 1 }),
      len: fc.integer({ min: 1, max: 600 }),
      fail: fc.option(fc.constantFrom<BlockErrorCode>('EIO', 'ENOSPC', 'ETIMEDOUT'), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(reqArb, { maxLength: 30 }), async (reqs) => {
        const faults = new FaultInjector(new Reshape(new MemoryDriver({ size: SIZE }), { caps: { canCache: true } }));
        const stats = new Stats(faults);
        const want = Object.fromEntries(BLOCK_OPS.map((op) => [op, { calls: 0, errors: 0, bytes: 0, errorCodes: {} as Record<string, number> }]));
        for (const r of reqs) {
          const len = r.op === 'flush' ? 0 : Math.min(r.len, SIZE - r.at);
          const rule = r.fail === undefined ? undefined : faults.addRule({ ops: [r.op], error: r.fail });
          let code: string | undefined;
          try {
            await issue(stats, r.op, r.at, len);
          } catch (err) {
            code = (err as { code: string }).code;
          }
          if (rule !== undefined) faults.removeRule(rule);
          expect(code).toBe(r.fail);
          const w = want[r.op];
          w.calls++;
          if (code === undefined) w.bytes += len;
          else {
            w.errors++;
            w.errorCodes[code] = (w.errorCodes[code] ?? 0) + 1;
          }
        }
        const snap = stats.snapshot();
        for (const op of BLOCK_OPS) {
          expect(snap[op]).toMatchObject(want[op]);
          expect(snap[op].latencyMaxMs).toBeGreaterThanOrEqual(0);
          expect(snap[op].latencySumMs).toBeGreaterThanOrEqual(snap[op].latencyMaxMs);
          if (snap[op].calls === 0) expect(snap[op].latencySumMs).toBe(0);
        }
        await stats.close();
      }),
      { numRuns: 100 },
    );
  });

  it('measures latency from issue to settle, keeps the maximum, and reset starts afresh', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    const stats = new Stats(new Delay(new MemoryDriver({ size: SIZE }), { delays: (op, offset) => (op === 'read' ? offset : 0) }));
    for (const ms of [30, 10, 20]) {
      const p = stats.read(ms, 1);
      await vi.advanceTimersByTimeAsync(ms);
      await p;
    }
    expect(stats.snapshot().read).toMatchObject({ calls: 3, latencySumMs: 60, latencyMaxMs: 30, bytes: 3 });
    const pending = stats.read(40, 1);
    stats.reset();
    expect(stats.snapshot().read).toMatchObject({ calls: 0, latencySumMs: 0, latencyMaxMs: 0, bytes: 0 });
    await vi.advanceTimersByTimeAsync(40);
    await pending;
    // A request in flight at the reset counts towards the new period.
    expect(stats.snapshot().read).toMatchObject({ calls: 1, latencySumMs: 40, latencyMaxMs: 40 });
    await stats.close();
  });

  it('snapshots are frozen copies that later requests do not change', async () => {
    const stats = new Stats(new MemoryDriver({ size: SIZE }));
    await stats.write(0, new Uint8Array(10));
    const snap = stats.snapshot();
    await stats.write(0, new Uint8Array(10));
    expect(snap.write.calls).toBe(1);
    expect(stats.snapshot().write.calls).toBe(2);
    expect(Object.isFrozen(snap) && Object.isFrozen(snap.write) && Object.isFrozen(snap.write.errorCodes)).toBe(true);
    await stats.close();
  });

  it('requests the base class rejects before the filter are not counted', async () => {
    const stats = new Stats(new MemoryDriver({ size: SIZE }));
    await expect(stats.read(SIZE, 1)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(stats.write(0, new Uint8Array(0))).resolves.toBeUndefined();
    expect(stats.snapshot().read.calls + stats.snapshot().write.calls).toBe(0);
    await stats.close();
  });

  it('counts an emulated write-zeroes as one write-zeroes, not as the writes that carry it out', async () => {
    const stats = new Stats(new Reshape(new MemoryDriver({ size: 4 << 20 }), { caps: { canZero: false, canFastZero: false } }));
    await stats.writeZeroes(0, 3 << 20);
    expect(stats.snapshot().writeZeroes).toMatchObject({ calls: 1, bytes: 3 << 20 });
    expect(stats.snapshot().write.calls).toBe(0);
    await stats.close();
  });
});

function issue(d: Stats, op: BlockOp, at: number, len: number): Promise<unknown> {
  switch (op) {
    case 'read':
      return d.read(at, len);
    case 'write':
      return d.write(at, new Uint8Array(len).fill(1));
    case 'flush':
      return d.flush();
    case 'discard':
      return d.discard(at, len);
    case 'writeZeroes':
      return d.writeZeroes(at, len);
    case 'blockStatus':
      return d.blockStatus(at, len);
    case 'cache':
      return d.cache(at, len);
  }
}
