/**
 * Proof (c): fast-check's scheduler decides when each child request starts and when it completes,
 * so children finish in adversarial orders. Results and events must not depend on that order,
 * rewriteCorrupted must never undo a caller's concurrent write, overlapping writes must land in
 * the same order on every child, and a voting read must never see a write half-applied.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { quorumCaseArb } from '../../src/testing/quorum.js';
import { expectedEvents, scheduledRig, stage } from './harness.js';
import { hex, modelFifoRead, modelQuorumRead } from './model.js';

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

type Change = { kind: 'write' | 'writeZeroes' | 'discard'; offset: number; length: number; value: number };

describe('concurrent writes under adversarial orders (fc.scheduler)', () => {
  const SIZE = 32;
  const change = fc.record({
    kind: fc.constantFrom<Change['kind']>('write', 'write', 'writeZeroes', 'discard'),
    offset: fc.integer({ min: 0, max: SIZE - 1 }),
    length: fc.integer({ min: 1, max: 12 }),
    value: fc.integer({ min: 1, max: 250 }),
  }).map((c) => ({ ...c, length: Math.min(c.length, SIZE - c.offset) }));

  it('two overlapping writes land in issue order on every child: 2-of-2 reads keep working', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), async (s) => {
        const r = scheduledRig(s, 2, SIZE, { threshold: 2 });
        const first = r.quorum.write(0, new Uint8Array(8).fill(1));
        const second = r.quorum.write(4, new Uint8Array(8).fill(2));
        await s.waitIdle();
        await Promise.all([first, second]);
        const want = '0101010102020202020202020000000000000000000000000000000000000000';
        for (const m of r.mems) expect(hex(await m.read(0, SIZE))).toBe(want);
        const read = r.quorum.read(0, SIZE).then(hex);
        await s.waitIdle();
        expect(await read).toBe(want);
        expect(r.events).toEqual([]);
      }),
      { numRuns: 100 },
    );
  });

  it('any mix of overlapping writes, write-zeroes and discards leaves all children equal to issue order', async () => {
    const arb = fc.record({ n: fc.integer({ min: 2, max: 3 }), changes: fc.array(change, { minLength: 2, maxLength: 5 }) });
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), arb, async (s, { n, changes }) => {
        const r = scheduledRig(s, n, SIZE, { threshold: n - 1, readPattern: n === 3 ? 'quorum' : 'fifo' });
        const model = new Uint8Array(SIZE).fill(0xee);
        for (const m of r.mems) await m.write(0, model);
        const issued: number[] = [];
        // Each request is issued at a moment the scheduler picks, possibly while others are in flight.
        const done = changes.map((c, i) =>
          s.schedule(Promise.resolve(), `issue ${i}`).then(() => {
            issued.push(i);
            if (c.kind === 'write') return r.quorum.write(c.offset, new Uint8Array(c.length).fill(c.value));
            if (c.kind === 'writeZeroes') return r.quorum.writeZeroes(c.offset, c.length);
            return r.quorum.discard(c.offset, c.length);
          }),
        );
        await s.waitIdle();
        await Promise.all(done);
        for (const i of issued) {
          const c = changes[i];
          model.fill(c.kind === 'write' ? c.value : 0, c.offset, c.offset + c.length);
        }
        for (const m of r.mems) expect(hex(await m.read(0, SIZE))).toBe(hex(model));
        expect(r.events).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });

  it('a voting read racing overlapping writes sees one whole state, never a mix: no reports, no EIO', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.boolean(), async (s, blkverify) => {
        // 2-of-2 and blkverify both fail a read on any difference between the children.
        const r = scheduledRig(s, 2, SIZE, { threshold: 2, blkverify });
        const states = [hex(new Uint8Array(16))];
        const ops: Promise<unknown>[] = [];
        for (let v = 1; v <= 2; v++) {
          ops.push(s.schedule(Promise.resolve(), `write ${v}`).then(() => r.quorum.write(0, new Uint8Array(16).fill(v))));
        }
        const reads = [0, 1].map((k) => s.schedule(Promise.resolve(), `read ${k}`).then(() => r.quorum.read(0, 16)).then(hex));
        await s.waitIdle();
        await Promise.all(ops);
        const seen = await Promise.all(reads);
        states.push(hex(new Uint8Array(16).fill(1)), hex(new Uint8Array(16).fill(2)));
        for (const got of seen) expect(states).toContain(got);
        expect(r.events).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });

  it('flush racing writes: each failing child reported once as flush, whatever the order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.integer({ min: 0, max: 2 }), async (s, bad) => {
        const r = scheduledRig(s, 3, SIZE, { threshold: 2 });
        r.faults[bad].addRule({ ops: ['flush'], error: 'EIO' });
        const ops = [
          r.quorum.write(0, new Uint8Array(8).fill(3)),
          r.quorum.flush(),
          r.quorum.write(4, new Uint8Array(8).fill(4)),
          r.quorum.flush(),
        ];
        await s.waitIdle();
        await Promise.all(ops);
        expect(r.events).toEqual([
          { kind: 'report-bad', child: `children.${bad}`, type: 'flush', code: 'EIO', offset: 0, length: 0 },
          { kind: 'report-bad', child: `children.${bad}`, type: 'flush', code: 'EIO', offset: 0, length: 0 },
        ]);
        for (const m of r.mems) expect(hex(await m.read(0, 12))).toBe('030303030404040404040404');
      }),
      { numRuns: 100 },
    );
  });
});
