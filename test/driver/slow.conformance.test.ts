/**
 * The conformance suite over drivers whose requests take real time, so that its abort, close and
 * concurrency groups meet requests genuinely in flight:
 * - "slow": Delay (1 ms on every request) over MemoryDriver — an abort mid-flight lands while the
 *   request waits, close() finds work to drain;
 * - "jittered": FilterDriver over Delay (seeded 0, 1 or 2 ms per request) over MemoryDriver —
 *   concurrent requests complete out of issue order.
 * The tests below the suites check that these shapes really produce what they are here for.
 */
import { describe, expect, it } from 'vitest';
import type { BlockDriver } from '../../src/driver.js';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { isBlockError } from '../../src/errors.js';
import { FilterDriver } from '../../src/filter.js';
import { Delay } from '../../src/filters/delay.js';
import { seededRandom } from '../../src/filters/prng.js';
import { blockDriverSuite } from '../conformance/index.js';

/** Delays every request by 1 ms. */
const slow = (size: number): BlockDriver => new Delay(new MemoryDriver({ size }), { delays: () => 1 });

let seed = 20240601;
/** 0, 1 or 2 ms per request from a seeded generator: a fixed, reproducible, out-of-order schedule. */
function jittered(size: number, s = seed++): BlockDriver {
  const random = seededRandom(s);
  return new FilterDriver(new Delay(new MemoryDriver({ size }), { delays: () => Math.floor(random() * 3) }));
}

// Fewer runs than the default 50: every request costs real milliseconds here.
blockDriverSuite({ name: 'slow: Delay (1 ms) over MemoryDriver', factory: ({ size }) => slow(size), discardReadsZeroes: true, numRuns: 30 });
blockDriverSuite({ name: 'jittered: FilterDriver over Delay (0-2 ms, seeded) over MemoryDriver', factory: ({ size }) => jittered(size), discardReadsZeroes: true, numRuns: 30 });

describe('the timing shapes do what they are for', () => {
  it('slow: an abort mid-flight really cancels (ECANCELED) and leaves the data untouched', async () => {
    const d = slow(4096);
    await d.write(0, new Uint8Array(8).fill(5));
    const controller = new AbortController();
    const target = new Uint8Array(8).fill(0xee);
    const read = d.readInto(0, target, { signal: controller.signal });
    const write = d.write(0, new Uint8Array(8).fill(6), { signal: controller.signal });
    await Promise.resolve();
    expect(d.inFlight).toBe(2);
    controller.abort(new Error('stop'));
    for (const p of [read, write]) {
      const err = await p.catch((e: unknown) => e);
      expect(isBlockError(err) && err.code).toBe('ECANCELED');
    }
    expect([...target]).toEqual(Array(8).fill(0xee));
    expect([...(await d.read(0, 8))]).toEqual(Array(8).fill(5));
    await d.close();
  });

  it('slow: close() finds requests in flight, drains them, and refuses new ones', async () => {
    const d = slow(4096);
    const writes = [0, 1, 2].map((i) => d.write(i * 8, new Uint8Array(8).fill(i + 1)));
    const closing = d.close();
    expect(d.inFlight).toBe(3);
    await expect(d.read(0, 1)).rejects.toMatchObject({ code: 'ESHUTDOWN' });
    await Promise.all(writes);
    await closing;
    expect(d.state).toBe('closed');
  });

  it('jittered: concurrent requests complete out of the order they were issued', async () => {
    const d = jittered(1 << 16, 7);
    const done: number[] = [];
    await Promise.all(Array.from({ length: 32 }, (_, i) => d.write(i * 512, new Uint8Array(512).fill(i + 1)).then(() => done.push(i))));
    expect(done).toHaveLength(32);
    expect(done, 'completion order').not.toEqual([...done].sort((a, b) => a - b));
    for (let i = 0; i < 32; i++) expect((await d.read(i * 512, 512)).every((b) => b === i + 1)).toBe(true);
    await d.close();
  });
});
