/**
 * Documented rules not covered by the generated cases: tie-breaks, what a failed write leaves,
 * flush, block status, capabilities and limits, close.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { BlockError } from '../../src/errors.js';
import { FilterDriver } from '../../src/filter.js';
import { FaultInjector } from '../../src/filters/fault-injector.js';
import type { WriteZeroesOptions } from '../../src/types.js';
import { Quorum } from '../../src/quorum/quorum.js';
import { Caps, Limited, record } from './harness.js';

const bytes = (...b: number[]) => new Uint8Array(b);

describe('vote tie-break', () => {
  it('between versions with equal votes, the one holding the lowest child index wins', async () => {
    const mems = Array.from({ length: 4 }, () => new MemoryDriver({ size: 512 }));
    const q = new Quorum({ children: mems, threshold: 2 });
    const events = record(q);
    // children 0 and 3 hold A, children 1 and 2 hold B: a 2–2 tie, both at the threshold.
    for (const [i, v] of [[0, 0xa], [1, 0xb], [2, 0xb], [3, 0xa]] as const) await mems[i].write(0, bytes(v));
    expect([...(await q.read(0, 1))]).toEqual([0xa]);
    expect(events.map((e) => (e.kind === 'report-bad' ? e.child : e.kind))).toEqual(['children.1', 'children.2']);
    // With child 0 failing, the lowest index among a version's readers decides.
    const broken = new Quorum({
      children: [new FaultInjector(mems[0], { rules: [{ ops: ['read'] }] }), mems[1], mems[2], mems[3]],
      threshold: 1,
      closeChildren: false,
    });
    await mems[2].write(0, bytes(0xa)); // readers: 1 → B, 2 → A, 3 → A: A wins 2–1
    expect([...(await broken.read(0, 1))]).toEqual([0xa]);
    await mems[2].write(0, bytes(0xc)); // readers: B, C, A, one vote each: B (child 1) wins
    expect([...(await broken.read(0, 1))]).toEqual([0xb]);
  });
});

describe('ambiguous majority', () => {
  it('when a losing version also reaches the threshold, the tie-break answers but nothing is rewritten', async () => {
    const mems = Array.from({ length: 4 }, () => new MemoryDriver({ size: 512 }));
    const q = new Quorum({ children: mems, threshold: 2, rewriteCorrupted: true });
    const events = record(q);
    for (const [i, v] of [[0, 0xa], [1, 0xb], [2, 0xb], [3, 0xa]] as const) await mems[i].write(0, bytes(v));
    expect([...(await q.read(0, 1))]).toEqual([0xa]);
    // Reported as outvoted, but B had 2 votes too: neither copy is overwritten.
    expect(events.map((e) => (e.kind === 'report-bad' ? e.child : e.kind))).toEqual(['children.1', 'children.2']);
    expect(await Promise.all(mems.map(async (m) => (await m.read(0, 1))[0]))).toEqual([0xa, 0xb, 0xb, 0xa]);
    // 3–2 with threshold 2 is still ambiguous; 3–1 with threshold 2 is not and gets repaired.
    const five = Array.from({ length: 5 }, () => new MemoryDriver({ size: 512 }));
    const q5 = new Quorum({ children: five, threshold: 2, rewriteCorrupted: true });
    for (const [i, v] of [[0, 1], [1, 1], [2, 1], [3, 2], [4, 2]] as const) await five[i].write(0, bytes(v));
    expect([...(await q5.read(0, 1))]).toEqual([1]);
    expect((await five[4].read(0, 1))[0]).toBe(2);
    await five[4].write(0, bytes(3));
    await q5.read(0, 1);
    expect(await Promise.all(five.map(async (m) => (await m.read(0, 1))[0]))).toEqual([1, 1, 1, 1, 1]);
  });
});

describe('what a failed write leaves behind', () => {
  it('children that accepted a failed write keep it; with stale copies it can later win a vote', async () => {
    // QEMU semantics: a quorum write is not atomic. 3 children, threshold 2.
    const mems = Array.from({ length: 3 }, () => new MemoryDriver({ size: 512 }));
    const faults = mems.map((m) => new FaultInjector(m));
    const q = new Quorum({ children: faults, threshold: 2 });
    await q.write(0, bytes(1)); // everyone holds 1
    faults[2].failAll();
    await q.write(0, bytes(2)); // succeeds on 0 and 1; child 2 is stale (1)
    faults[2].clearRules();
    faults[1].failAll();
    faults[2].failAll();
    await expect(q.write(0, bytes(1))).rejects.toMatchObject({ code: 'EIO' }); // fails, but child 0 now holds 1
    faults[1].clearRules();
    faults[2].clearRules();
    // The last successful write put 2 on the device, yet children 0 and 2 agree on 1.
    expect([...(await q.read(0, 1))]).toEqual([1]);
  });
});

describe('errors', () => {
  it('below the threshold the most common code wins, ties to the first failing child', async () => {
    const mems = Array.from({ length: 5 }, () => new MemoryDriver({ size: 512 }));
    const codes = [null, 'ENOSPC', 'EPERM', 'EPERM', 'ENOSPC'] as const;
    const faults = mems.map((m, i) => new FaultInjector(m, { rules: codes[i] === null ? [] : [{ error: codes[i]! }] }));
    const q = new Quorum({ children: faults, threshold: 2 });
    const err = await q.read(0, 1).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'ENOSPC',
      details: { children: { 'children.1': 'ENOSPC', 'children.2': 'EPERM', 'children.3': 'EPERM', 'children.4': 'ENOSPC' }, threshold: 2 },
    });
    expect((err as Error).cause).toMatchObject({ code: 'ENOSPC', details: { driver: 'faultinjector' } });
    await expect(q.write(0, bytes(1))).rejects.toMatchObject({ code: 'ENOSPC' });
    await expect(q.flush()).rejects.toMatchObject({ code: 'ENOSPC' });
  });

  it('flush: each failing child reported as flush; success at the threshold; no failure event', async () => {
    const mems = Array.from({ length: 3 }, () => new MemoryDriver({ size: 512 }));
    const faults = mems.map((m) => new FaultInjector(m));
    const q = new Quorum({ children: faults, threshold: 2 });
    const events = record(q);
    faults[1].addRule({ ops: ['flush'], error: 'EIO' });
    await q.flush();
    faults[2].addRule({ ops: ['flush'], error: 'EIO' });
    await expect(q.flush()).rejects.toMatchObject({ code: 'EIO' });
    expect(events.map((e) => (e.kind === 'report-bad' ? `${e.child}:${e.type}` : e.kind))).toEqual([
      'children.1:flush',
      'children.1:flush',
      'children.2:flush',
    ]);
  });
});

describe('capabilities and limits', () => {
  it('combine per field as documented', () => {
    const rw = new MemoryDriver({ size: 4096 });
    const ro = new MemoryDriver({ size: 4096, readOnly: true });
    const q = new Quorum({ children: [rw, ro], threshold: 1 });
    expect(q.capabilities).toMatchObject({ canWrite: false, canFua: false, canZero: false, canDiscard: false, canFlush: true, canBlockStatus: true });
    const w = new Quorum({ children: [new MemoryDriver({ size: 4096 }), new MemoryDriver({ size: 4096 })], threshold: 1 });
    expect(w.capabilities).toMatchObject({ canWrite: true, canFua: true, canZero: true, canFastZero: false, canMultiConn: true, canCache: false });
    expect(new Quorum({ children: [new MemoryDriver({ size: 4096 })], threshold: 1 }).capabilities.canFastZero).toBe(true);
  });

  it('a fast zero over several children fails with ENOTSUP before touching any of them, even where one child could do it', async () => {
    // Child 1 claims fast zeroing but refuses this range, as an NBD server may; child 0 could zero at once.
    class RefusesFastZero extends FilterDriver {
      protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
        if (options.fastZero === true) return Promise.reject(new BlockError('ENOTSUP', 'not fast here'));
        return super._writeZeroes(offset, length, options);
      }
    }
    const kids = [new MemoryDriver({ size: 4096 }), new RefusesFastZero(new MemoryDriver({ size: 4096 }))];
    for (const threshold of [1, 2]) {
      const q = new Quorum({ children: kids, threshold });
      await q.write(0, new Uint8Array(4096).fill(0xaa));
      await expect(q.writeZeroes(0, 4096, { fastZero: true })).rejects.toMatchObject({ code: 'ENOTSUP' });
      for (const k of kids) expect((await k.read(0, 4096)).every((b) => b === 0xaa)).toBe(true);
      expect((await q.read(0, 1))[0]).toBe(0xaa);
    }
  });

  it('a read-only child makes writes fail with EPERM before anything is written', async () => {
    const rw = new MemoryDriver({ size: 4096 });
    const q = new Quorum({ children: [rw, new MemoryDriver({ size: 4096, readOnly: true })], threshold: 1 });
    await expect(q.write(0, bytes(1))).rejects.toMatchObject({ code: 'EPERM' });
    expect(rw.allocatedBytes).toBe(0);
  });

  it('limits are the strictest of the children, and follow children added with allowManifestChange', async () => {
    const a = new Limited(new MemoryDriver({ size: 8192 }), { minBlockSize: 1, preferredBlockSize: 4096, maxBlockSize: 65536, maxTransfer: 32768 });
    const b = new Limited(new MemoryDriver({ size: 8192 }), { minBlockSize: 512, preferredBlockSize: 512, maxBlockSize: 1 << 20, maxTransfer: 1 << 20 });
    const q = new Quorum({ children: [a], threshold: 1 });
    expect(q.limits.minBlockSize).toBe(1);
    await expect(q.addChild(b)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('minBlockSize 1 → 512') });
    expect(q.children).toEqual([a]);
    await q.addChild(b, { allowManifestChange: true });
    expect(q.limits).toEqual({ minBlockSize: 512, preferredBlockSize: 4096, maxBlockSize: 65536, maxTransfer: 32768 });
  });

  it('discard is offered only when every child zeroes natively, since it is sent as write-zeroes', () => {
    const mem = () => new MemoryDriver({ size: 4096 });
    expect(new Quorum({ children: [mem(), mem()], threshold: 1 }).capabilities.canDiscard).toBe(true);
    const noZero = new Caps(mem(), { canZero: false, canFastZero: false, canDiscard: true });
    expect(new Quorum({ children: [mem(), noZero], threshold: 1 }).capabilities.canDiscard).toBe(false);
  });
});

describe('blockStatus', () => {
  it('is zero only where every child says zero, allocated where any child is', async () => {
    const CHUNK = 512;
    const CHUNKS = 8;
    const arb = fc.array(fc.uniqueArray(fc.integer({ min: 0, max: CHUNKS - 1 }), { maxLength: CHUNKS }), { minLength: 1, maxLength: 4 });
    await fc.assert(
      fc.asyncProperty(arb, fc.integer({ min: 0, max: CHUNKS * CHUNK - 1 }), async (written, start) => {
        const mems = written.map(() => new MemoryDriver({ size: CHUNKS * CHUNK, chunkSize: CHUNK }));
        for (let i = 0; i < mems.length; i++) for (const c of written[i]) await mems[i].write(c * CHUNK, bytes(1));
        const q = new Quorum({ children: mems, threshold: 1 });
        let pos = start;
        while (pos < CHUNKS * CHUNK) {
          const extents = await q.blockStatus(pos, CHUNKS * CHUNK - pos);
          for (const e of extents) {
            for (let b = e.offset; b < e.offset + e.length; b += 97) {
              const chunk = Math.floor(b / CHUNK);
              const anyData = written.some((w) => w.includes(chunk));
              expect(e.zero).toBe(!anyData);
              expect(e.allocated).toBe(anyData);
            }
          }
          pos = extents[extents.length - 1].offset + extents[extents.length - 1].length;
        }
      }),
      { numRuns: 150 },
    );
  });

  it('a failing child is reported (read, with its error) and the range answered as data; all failing is an error', async () => {
    const mems = [new MemoryDriver({ size: 4096 }), new MemoryDriver({ size: 4096 }), new MemoryDriver({ size: 4096 })];
    const faults = mems.map((m) => new FaultInjector(m));
    const q = new Quorum({ children: faults, threshold: 2 });
    const events = record(q);
    faults[0].addRule({ ops: ['blockStatus'], error: 'EIO' });
    // Every child would say "zero" here, but one could not answer: QEMU's rule, the whole range is data.
    expect(await q.blockStatus(512, 2048)).toEqual([{ offset: 512, length: 2048, zero: false, allocated: true }]);
    expect(events).toEqual([{ kind: 'report-bad', child: 'children.0', type: 'read', code: 'EIO', offset: 512, length: 2048 }]);
    events.length = 0;
    faults[1].addRule({ ops: ['blockStatus'], error: 'ENOMEM' });
    faults[2].addRule({ ops: ['blockStatus'], error: 'ENOMEM' });
    await expect(q.blockStatus(0, 4096)).rejects.toMatchObject({ code: 'ENOMEM' });
    expect(events.map((e) => (e.kind === 'report-bad' ? [e.child, e.type, e.code] : e.kind))).toEqual([
      ['children.0', 'read', 'EIO'],
      ['children.1', 'read', 'ENOMEM'],
      ['children.2', 'read', 'ENOMEM'],
    ]);
  });
});

describe('close', () => {
  it('closes the children by default, and not with closeChildren: false', async () => {
    const a = [new MemoryDriver({ size: 512 }), new MemoryDriver({ size: 512 })];
    await new Quorum({ children: a, threshold: 1 }).close();
    expect(a.map((d) => d.state)).toEqual(['closed', 'closed']);
    const b = [new MemoryDriver({ size: 512 }), new MemoryDriver({ size: 512 })];
    const q = new Quorum({ children: b, threshold: 1, closeChildren: false });
    await q.close();
    expect(b.map((d) => d.state)).toEqual(['open', 'open']);
    await expect(q.read(0, 1)).rejects.toMatchObject({ code: 'ESHUTDOWN' });
    await expect(q.addChild(new MemoryDriver({ size: 512 }))).rejects.toMatchObject({ code: 'ESHUTDOWN' });
  });
});
