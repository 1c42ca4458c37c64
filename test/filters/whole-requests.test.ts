/**
 * Filters that count, fail, delay or throttle requests see each read and write whole, even when
 * the child takes less per call (its `maxTransfer`): the child splits them, not the filter. A
 * split in the filter would count one request as several, charge it several times, and fail a
 * write in its second piece after the first was written.
 */
import { describe, expect, it, vi } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { Delay } from '../../src/filters/delay.js';
import { FaultInjector } from '../../src/filters/fault-injector.js';
import { Stats } from '../../src/filters/stats.js';
import { Throttle } from '../../src/filters/throttle.js';
import { Reshape } from './helpers.js';
import { FAKED_TIMERS } from '../helpers/fake-timers.js';

const KIB = 1024;
/** A child that takes at most 12 KiB per call. */
const smallTransfers = (): Reshape => new Reshape(new MemoryDriver({ size: 1 << 20 }), { limits: { minBlockSize: 4096, maxTransfer: 12 * KIB } });

describe('filters over a child with a small maxTransfer', () => {
  it('Stats counts one 36 KiB read and one 36 KiB write as one request each', async () => {
    const s = new Stats(smallTransfers());
    await s.write(0, new Uint8Array(36 * KIB).fill(1));
    await s.read(0, 36 * KIB);
    const snap = s.snapshot();
    expect(snap.read).toMatchObject({ calls: 1, bytes: 36 * KIB });
    expect(snap.write).toMatchObject({ calls: 1, bytes: 36 * KIB });
    await s.close();
  });

  it('a FaultInjector rule that fails a write fails it before anything reaches the child, and afterCalls counts requests', async () => {
    const child = smallTransfers();
    const f = new FaultInjector(child, { rules: [{ ops: ['write'], range: { offset: 24 * KIB, length: 4096 }, error: 'ENOSPC' }] });
    await expect(f.write(0, new Uint8Array(36 * KIB).fill(7))).rejects.toMatchObject({ code: 'ENOSPC' });
    expect((await child.read(0, 36 * KIB)).every((b) => b === 0)).toBe(true);
    f.clearRules();
    f.addRule({ ops: ['read'], afterCalls: 1, error: 'EIO' });
    await f.read(0, 36 * KIB); // the first request passes whole
    await expect(f.read(0, 36 * KIB)).rejects.toMatchObject({ code: 'EIO' });
    await f.close();
  });

  it('Delay holds a read once, and Throttle charges it as one operation', async () => {
    vi.useFakeTimers({ toFake: FAKED_TIMERS });
    try {
      const d = new Delay(smallTransfers(), { delays: { read: 40 } });
      let done = false;
      const read = d.read(0, 36 * KIB).then(() => (done = true));
      await vi.advanceTimersByTimeAsync(40);
      await read;
      expect(done).toBe(true); // three pieces delayed in turn would need 120 ms
      await d.close();

      const t = new Throttle(smallTransfers(), { readIops: 1 });
      await t.read(0, 36 * KIB); // a full bucket: at once, leaving no debt if charged once
      let second = false;
      const next = t.read(0, 36 * KIB).then(() => (second = true));
      await vi.advanceTimersByTimeAsync(1000);
      expect(second).toBe(true); // charged three operations, it would wait three seconds
      await next;
      await t.close();
    } finally {
      vi.useRealTimers();
    }
  });
});
