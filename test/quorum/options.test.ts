import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { BlockError } from '../../src/errors.js';
import { Quorum } from '../../src/quorum/quorum.js';
import type { ReadPattern } from '../../src/quorum/vote.js';

/** The construction rules of the issue, written out independently. */
function valid(o: { n: number; threshold: number; pattern: ReadPattern; rewrite: boolean; verify: boolean; sizesDiffer: boolean }): boolean {
  if (o.n < 1 || o.sizesDiffer) return false;
  if (!Number.isInteger(o.threshold) || o.threshold < 1 || o.threshold > o.n) return false;
  if (o.rewrite && o.pattern !== 'quorum') return false;
  if (o.verify && (o.pattern !== 'quorum' || o.n !== 2 || o.threshold !== 2 || o.rewrite)) return false;
  return true;
}

describe('Quorum options', () => {
  it('construct exactly when the rules allow, else throw EINVAL', () => {
    const arb = fc.record({
      n: fc.integer({ min: 0, max: 5 }),
      threshold: fc.oneof(fc.integer({ min: -1, max: 6 }), fc.constant(1.5)),
      pattern: fc.constantFrom<ReadPattern>('quorum', 'fifo', 'round-robin', 'least-pending'),
      rewrite: fc.boolean(),
      verify: fc.boolean(),
      sizesDiffer: fc.boolean(),
    });
    fc.assert(
      fc.property(arb, (o) => {
        const sizesDiffer = o.sizesDiffer && o.n >= 2;
        const children = Array.from({ length: o.n }, (_, i) => new MemoryDriver({ size: sizesDiffer && i === o.n - 1 ? 1024 : 512 }));
        const make = () =>
          new Quorum({ children, threshold: o.threshold, readPattern: o.pattern, rewriteCorrupted: o.rewrite, blkverify: o.verify });
        if (valid({ ...o, sizesDiffer })) {
          const q = make();
          expect(q.size).toBe(512);
          expect(q.threshold).toBe(o.threshold);
          expect(q.readPattern).toBe(o.pattern);
        } else {
          expect(make).toThrow(BlockError);
          expect(make).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/^Quorum: /) }));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('defaults: quorum pattern, no rewrite, no blkverify, name "quorum"', () => {
    const q = new Quorum({ children: [new MemoryDriver({ size: 512 })], threshold: 1 });
    expect([q.readPattern, q.name]).toEqual(['quorum', 'quorum']);
  });

  it('says which rule is broken', () => {
    const m = (size = 512) => new MemoryDriver({ size });
    const cases: [() => unknown, RegExp][] = [
      [() => new Quorum({ children: [], threshold: 1 }), /at least one child/],
      [() => new Quorum({ children: [m()], threshold: undefined as unknown as number }), /threshold is required/],
      [() => new Quorum({ children: [m(), m()], threshold: 3 }), /from 1 to the number of children \(2\)/],
      [() => new Quorum({ children: [m(), m(1024)], threshold: 1 }), /children\[1\] has 1024/],
      [() => new Quorum({ children: [m()], threshold: 1, readPattern: 'random' as ReadPattern }), /not one of/],
      [() => new Quorum({ children: [m()], threshold: 1, readPattern: 'fifo', rewriteCorrupted: true }), /rewriteCorrupted needs/],
      [() => new Quorum({ children: [m()], threshold: 1, reportIntervalMs: -1 }), /reportIntervalMs/],
      // Node fires a timer longer than 2^31 − 1 ms at once: the rate limit would do nothing.
      [() => new Quorum({ children: [m()], threshold: 1, reportIntervalMs: 2 ** 31 }), /reportIntervalMs/],
    ];
    for (const [make, message] of cases) expect(make).toThrow(message);
    const d = m();
    expect(() => new Quorum({ children: [d, d], threshold: 1 })).toThrow(/appears twice/);
  });

  it('wrong types are TypeErrors', async () => {
    expect(() => new Quorum({ children: 'x' as never, threshold: 1 })).toThrow(TypeError);
    expect(() => new Quorum({ children: [{} as never], threshold: 1 })).toThrow(TypeError);
    const q = new Quorum({ children: [new MemoryDriver({ size: 512 })], threshold: 1 });
    await expect(q.addChild({} as never)).rejects.toThrow(TypeError);
  });

  it('options of the wrong JavaScript type are TypeErrors, never read as truthy or falsy', () => {
    const children = (): MemoryDriver[] => [new MemoryDriver({ size: 512 }), new MemoryDriver({ size: 512 })];
    const wrong: Record<string, unknown>[] = [
      { threshold: '2' },
      { threshold: 2, rewriteCorrupted: 'no' },
      { threshold: 2, blkverify: 1 },
      { threshold: 2, closeChildren: 'false' },
      { threshold: 2, readPattern: 7 },
      { threshold: 2, reportIntervalMs: '10' },
      { threshold: 2, shareWrites: 1 },
    ];
    for (const o of wrong) expect(() => new Quorum({ children: children(), ...o } as never), JSON.stringify(o)).toThrow(TypeError);
  });
});
