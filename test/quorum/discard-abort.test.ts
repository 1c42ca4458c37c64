/**
 * Discard keeps replicas identical (it goes out as write-zeroes, or not at all), and a caller's
 * abort is never blamed on the children: a write either reaches every child or fails before it is
 * sent, and an aborted read fails with ECANCELED and reports nobody.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { FileDriver } from '../../src/drivers/file.js';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { Delay } from '../../src/filters/delay.js';
import { FaultInjector } from '../../src/filters/fault-injector.js';
import { Quorum } from '../../src/quorum/quorum.js';
import type { ReadPattern } from '../../src/quorum/vote.js';
import { record } from './harness.js';
import { hex } from './model.js';

const SIZE = 256 * 1024;
let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function tmpFile(): Promise<FileDriver> {
  const dir = await mkdtemp(join(tmpdir(), 'quorum-discard-'));
  const file = await FileDriver.open(join(dir, 'disk.img'), { create: true, size: SIZE });
  cleanup.push(async () => {
    await file.close();
    await rm(dir, { recursive: true, force: true });
  });
  return file;
}

describe('discard', () => {
  it('MemoryDriver + FileDriver, threshold 2: discard cannot zero both, so it does nothing and reads still agree', async () => {
    const mem = new MemoryDriver({ size: SIZE });
    const q = new Quorum({ children: [mem, await tmpFile()], threshold: 2, closeChildren: false });
    const events = record(q);
    expect(q.capabilities.canDiscard).toBe(false);
    await q.write(0, new Uint8Array(4096).fill(5));
    await q.discard(0, 4096);
    expect(hex(await q.read(0, 4096))).toBe(hex(new Uint8Array(4096).fill(5)));
    expect(events).toEqual([]);
  });

  it('when every child zeroes (here a FileDriver whose wrapper zeroes for it): discard zeroes every replica', async () => {
    const mem = new MemoryDriver({ size: SIZE });
    const file = new FaultInjector(await tmpFile(), { closeChild: false });
    const q = new Quorum({ children: [mem, file], threshold: 2, closeChildren: false });
    expect(q.capabilities.canDiscard).toBe(true);
    await q.write(0, new Uint8Array(128 * 1024).fill(7));
    const allocated = mem.allocatedBytes;
    await q.discard(0, 64 * 1024);
    expect(hex(await q.read(0, 64 * 1024))).toBe(hex(new Uint8Array(64 * 1024)));
    for (const d of q.children) expect((await d.read(0, 64 * 1024)).every((b) => b === 0)).toBe(true);
    // Sent as write-zeroes with mayUnmap: the memory child gave the whole chunk back.
    expect(mem.allocatedBytes).toBe(allocated - 64 * 1024);
  });

  it('random writes and discards over jittery children leave every replica identical, discarded ranges zero', async () => {
    const op = fc.record({
      discard: fc.boolean(),
      offset: fc.integer({ min: 0, max: 63 }),
      length: fc.integer({ min: 1, max: 32 }),
      value: fc.integer({ min: 1, max: 255 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 8 }), fc.integer(), async (ops, seed) => {
        let x = seed >>> 0 || 1;
        const jitter = () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 16) % 3;
        const mems = [0, 1, 2].map(() => new MemoryDriver({ size: 96, chunkSize: 512 }));
        const q = new Quorum({ children: mems.map((m) => new Delay(m, { delays: () => jitter() })), threshold: 2 });
        const model = new Uint8Array(96);
        await Promise.all(
          ops.map((o) => {
            const end = Math.min(96, o.offset + o.length);
            model.fill(o.discard ? 0 : o.value, o.offset, end);
            return o.discard ? q.discard(o.offset, end - o.offset) : q.write(o.offset, new Uint8Array(end - o.offset).fill(o.value));
          }),
        );
        for (const m of mems) expect(hex(await m.read(0, 96))).toBe(hex(model));
        await q.close();
      }),
      { numRuns: 30 },
    );
  });
});

describe('a caller abort', () => {
  function slowQuorum(ms: { read?: number; write?: number }, readPattern: ReadPattern = 'quorum') {
    const mems = [0, 1, 2].map(() => new MemoryDriver({ size: 4096 }));
    const q = new Quorum({ children: mems.map((m) => new Delay(m, { delays: ms })), threshold: 2, readPattern });
    cleanup.push(() => q.close());
    return { q, mems, events: record(q) };
  }

  it('after a write was sent does not cancel it: it lands on every child and nobody is reported', async () => {
    const { q, mems, events } = slowQuorum({ write: 20 });
    const ac = new AbortController();
    const w = q.write(0, new Uint8Array(8).fill(3), { signal: ac.signal });
    setTimeout(() => ac.abort(), 5);
    await w;
    expect(events).toEqual([]);
    for (const m of mems) expect(hex(await m.read(0, 8))).toBe('0303030303030303');
  });

  it('while a write waits behind an overlapping one fails it with ECANCELED before any child sees it', async () => {
    const { q, mems, events } = slowQuorum({ write: 20 });
    const ac = new AbortController();
    const first = q.write(0, new Uint8Array(8).fill(1));
    const second = q.write(4, new Uint8Array(8).fill(2), { signal: ac.signal });
    const third = q.write(8, new Uint8Array(8).fill(4)); // waited for both; goes on once the second gives up
    ac.abort();
    await expect(second).rejects.toMatchObject({ code: 'ECANCELED' });
    await Promise.all([first, third]);
    expect(events).toEqual([]);
    for (const m of mems) expect(hex(await m.read(0, 16))).toBe('01010101010101010404040404040404');
  });

  it('during a voting read fails it with ECANCELED, reporting nobody and raising no failure', async () => {
    const { q, events } = slowQuorum({ read: 20 });
    const ac = new AbortController();
    const r = q.read(0, 8, { signal: ac.signal });
    setTimeout(() => ac.abort(), 5);
    await expect(r).rejects.toMatchObject({ code: 'ECANCELED' });
    expect(events).toEqual([]);
  });

  it('during a fifo read fails it with ECANCELED without blaming or trying any child', async () => {
    const { q, events } = slowQuorum({ read: 20 }, 'fifo');
    const ac = new AbortController();
    const r = q.read(0, 8, { signal: ac.signal });
    setTimeout(() => ac.abort(), 5);
    await expect(r).rejects.toMatchObject({ code: 'ECANCELED' });
    expect(events).toEqual([]);
    expect(q.members.map((m) => m.pending)).toEqual([0, 0, 0]);
  });
});
