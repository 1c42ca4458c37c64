/**
 * Runtime children: addChild holds writes while the child joins (drain, sync, insert, release),
 * refuses children that would change the quorum's manifest, and removeChild waits for what is on
 * the child — checked under fast-check's scheduler, so every completion order is tried.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { Delay } from '../../src/filters/delay.js';
import { Quorum } from '../../src/quorum/quorum.js';
import type { BlockCapabilities, BlockLimits } from '../../src/types.js';
import { Caps, Limited, Scheduled, scheduledRig } from './harness.js';
import { hex } from './model.js';

const SIZE = 32;
const write = fc
  .record({ offset: fc.integer({ min: 0, max: SIZE - 1 }), length: fc.integer({ min: 1, max: 12 }), value: fc.integer({ min: 1, max: 250 }) })
  .map((w) => ({ ...w, length: Math.min(w.length, SIZE - w.offset) }));

const label = (w: { offset: number; length: number }): string => `start write ${w.offset}+${w.length}`;
const starts = (g: Scheduled): string[] => g.log.filter((l) => l.startsWith('start'));

describe('addChild under adversarial orders (fc.scheduler)', () => {
  it('writes issued before the call finish on the old children first; every later write reaches the new child', async () => {
    const arb = fc.record({ before: fc.array(write, { maxLength: 3 }), after: fc.array(write, { maxLength: 3 }), pattern: fc.constantFrom('quorum' as const, 'fifo' as const) });
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), arb, async (s, { before, after, pattern }) => {
        const r = scheduledRig(s, 2, SIZE, { threshold: 2, readPattern: pattern });
        const model = new Uint8Array(SIZE);
        const fresh = new MemoryDriver({ size: SIZE });
        const joining = new Scheduled(fresh, s, 'joining');
        const ops: Promise<unknown>[] = before.map((w) => r.quorum.write(w.offset, new Uint8Array(w.length).fill(w.value)));
        let quiet: boolean | undefined;
        const added = r.quorum.addChild(joining, {
          // The well-defined moment: nothing in flight, so the old children agree; copy child 0.
          sync: async () => {
            quiet = r.quorum.members.every((m) => m.pending === 0);
            await fresh.write(0, await r.mems[0].read(0, SIZE));
          },
        });
        ops.push(...after.map((w) => r.quorum.write(w.offset, new Uint8Array(w.length).fill(w.value))));
        await s.waitIdle();
        expect(await added).toBe('children.2');
        await Promise.all(ops);
        for (const w of [...before, ...after]) model.fill(w.value, w.offset, w.offset + w.length);
        expect(quiet).toBe(true);
        for (const d of [...r.mems, fresh]) expect(hex(await d.read(0, SIZE))).toBe(hex(model));
        // The new child saw exactly the writes issued after the call, and nothing before it joined.
        expect(starts(joining).sort()).toEqual(after.map(label).sort());
        const read = r.quorum.read(0, SIZE).then(hex);
        await s.waitIdle();
        expect(await read).toBe(hex(model));
        expect(r.events).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });

  it('removeChild resolves only once the child is idle; writes after the call never reach it', async () => {
    const arb = fc.record({ before: fc.array(write, { maxLength: 3 }), after: fc.array(write, { maxLength: 3 }) });
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), arb, async (s, { before, after }) => {
        const r = scheduledRig(s, 3, SIZE, { threshold: 2 });
        const ops: Promise<unknown>[] = before.map((w) => r.quorum.write(w.offset, new Uint8Array(w.length).fill(w.value)));
        const removed = r.quorum.removeChild('children.1').then((d) => {
          // Resolved: every request the quorum sent to the child has settled there.
          expect(starts(r.gates[1]).length).toBe(r.gates[1].log.filter((l) => l.startsWith('done')).length);
          return d;
        });
        ops.push(...after.map((w) => r.quorum.write(w.offset, new Uint8Array(w.length).fill(w.value))));
        await s.waitIdle();
        expect(await removed).toBe(r.gates[1]);
        await Promise.all(ops);
        // It saw only writes issued before the call: all those sent at once (nothing earlier overlapped
        // them), perhaps not those that were still waiting behind an overlapping one when it left.
        const seen = starts(r.gates[1]);
        const immediate = before.filter((w, i) => !before.slice(0, i).some((p) => p.offset < w.offset + w.length && w.offset < p.offset + p.length));
        for (const l of immediate.map(label)) expect(seen).toContain(l);
        const pool = before.map(label);
        for (const l of seen) {
          expect(pool).toContain(l);
          pool.splice(pool.indexOf(l), 1);
        }
        expect(r.quorum.children).toEqual([r.gates[0], r.gates[2]]);
      }),
      { numRuns: 150 },
    );
  });
});

describe('addChild', () => {
  it('an abort while writes drain gives up with ECANCELED; nothing is added and held writes go on', async () => {
    const mems = [0, 1].map(() => new MemoryDriver({ size: SIZE }));
    const q = new Quorum({ children: mems.map((m) => new Delay(m, { delays: { write: 20 } })), threshold: 2 });
    const slow = q.write(0, new Uint8Array(4).fill(1));
    const ac = new AbortController();
    const adding = q.addChild(new MemoryDriver({ size: SIZE }), { signal: ac.signal });
    const held = q.write(8, new Uint8Array(4).fill(2)); // waits behind the addition
    ac.abort();
    await expect(adding).rejects.toMatchObject({ code: 'ECANCELED' });
    await Promise.all([slow, held]);
    expect(q.children).toHaveLength(2);
    for (const m of mems) expect(hex(await m.read(0, 12))).toBe('010101010000000002020202');
    await q.close();
  });

  it('a sync that fails abandons the addition; a quorum closed meanwhile refuses it', async () => {
    const q = new Quorum({ children: [new MemoryDriver({ size: SIZE })], threshold: 1 });
    await expect(q.addChild(new MemoryDriver({ size: SIZE }), { sync: () => Promise.reject(new Error('copy failed')) })).rejects.toMatchObject({
      code: 'EIO',
      message: 'copy failed',
    });
    expect(q.children).toHaveLength(1);
    const closing = q.addChild(new MemoryDriver({ size: SIZE }), { sync: () => void q.close() });
    await expect(closing).rejects.toMatchObject({ code: 'ESHUTDOWN' });
    expect(q.children).toHaveLength(1);
  });

  it('refuses (EINVAL) exactly the children that would change capabilities or binding limits, unless allowed', async () => {
    const flags: (keyof BlockCapabilities)[] = ['canWrite', 'canFlush', 'canZero', 'canFastZero', 'canBlockStatus', 'canMultiConn', 'canCache'];
    const manifest = fc.record({
      caps: fc.record(Object.fromEntries(flags.map((f) => [f, fc.boolean()])) as Record<keyof BlockCapabilities, fc.Arbitrary<boolean>>),
      minBlockSize: fc.constantFrom(1, 512),
      preferred: fc.constantFrom(512, 4096),
      maxTransfer: fc.constantFrom(65536, 1 << 20),
    });
    const child = (m: { caps: Partial<BlockCapabilities>; minBlockSize: number; preferred: number; maxTransfer: number }) => {
      const limits: BlockLimits = { minBlockSize: m.minBlockSize, preferredBlockSize: m.preferred, maxBlockSize: 1 << 20, maxTransfer: m.maxTransfer };
      return new Caps(new Limited(new MemoryDriver({ size: 4096 }), limits), m.caps);
    };
    // canFastZero is no manifest change (a fast zero may always be refused): a second child turns it off.
    const binding = (q: Quorum) => JSON.stringify({ caps: { ...q.capabilities, canFastZero: undefined }, l: { ...q.limits, preferredBlockSize: 0 } });
    let refused = 0;
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(manifest, manifest, async (a, b) => {
        const q = new Quorum({ children: [child(a)], threshold: 1 });
        const before = binding(q);
        const extra = child(b);
        const outcome = await q.addChild(extra).then(
          () => 'added',
          (e: { code: string; message: string }) => {
            expect(e.code).toBe('EINVAL');
            expect(e.message).toMatch(/would change the quorum's capabilities or limits \(.+ → .+\); pass \{ allowManifestChange: true \}/);
            return 'refused';
          },
        );
        if (outcome === 'added') {
          accepted++;
          // Accepted silently only when nothing callers rely on changed.
          expect(binding(q)).toBe(before);
          expect(q.capabilities.canFastZero).toBe(false);
        } else {
          refused++;
          expect(q.children).toHaveLength(1);
          await q.addChild(extra, { allowManifestChange: true });
          expect(binding(q)).not.toBe(before);
        }
      }),
      { numRuns: 200 },
    );
    expect(refused).toBeGreaterThan(20);
    expect(accepted).toBeGreaterThan(5);
  });

  it('a read-only child would turn canWrite off: refused with a clear message', async () => {
    const q = new Quorum({ children: [new MemoryDriver({ size: 4096 })], threshold: 1 });
    await expect(q.addChild(new MemoryDriver({ size: 4096, readOnly: true }))).rejects.toMatchObject({
      code: 'EINVAL',
      message: expect.stringContaining('canWrite true → false'),
    });
    expect(q.capabilities.canWrite).toBe(true);
  });
});
