import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { quorumVote, type ChildOutcome, type VoteInput } from '../../src/quorum/vote.js';
import { caseBytes, childOutcomeSpecArb, corruptedCopy, outcomeOf, quorumCaseArb, voteInputOf } from '../../src/testing/quorum.js';
import { BLOCK_ERROR_CODES } from '../../src/errors.js';
import { hex, modelCompletion, modelFifoRead, modelQuorumRead, type ModelExpectation } from './model.js';

/** The parts of a VoteResult the model predicts, in the model's shape. */
function asModel(r: ReturnType<typeof quorumVote>, outcomes: readonly ChildOutcome[]): ModelExpectation {
  const out: ModelExpectation = {
    ok: r.ok,
    reports: r.reports.map((x) => (x.code === undefined ? { child: x.child } : { child: x.child, code: x.code })),
    rewrite: [...r.rewrite],
    failure: r.failure,
  };
  if (!r.ok) out.code = r.code;
  if (r.ok && r.source !== undefined) {
    const o = outcomes[r.source];
    if (o.ok && o.data !== undefined) out.dataHex = hex(o.data);
  }
  if (r.mismatchOffset !== undefined) out.mismatchAt = r.mismatchOffset;
  if (r.ambiguous !== undefined) out.ambiguous = r.ambiguous;
  return out;
}

describe('quorumVote (pure) agrees with the independent model', () => {
  it('quorum-pattern reads, with and without rewriteCorrupted and blkverify', () => {
    fc.assert(
      fc.property(quorumCaseArb({ blkverify: true }), (c) => {
        const input = voteInputOf(c);
        const expected = modelQuorumRead([...input.outcomes], c.threshold, c);
        expect(asModel(quorumVote(input), input.outcomes)).toEqual(expected);
      }),
      { numRuns: 3000 },
    );
  });

  it('blkverify names the first differing byte anywhere in the copy', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (a, pos, flip) => {
          const at = pos % a.length;
          const b = Uint8Array.from(a);
          b[at] ^= flip;
          const r = quorumVote({ threshold: 2, blkverify: true, outcomes: [{ ok: true, data: a }, { ok: true, data: b }] });
          expect(r).toMatchObject({ ok: false, code: 'EIO', failure: true, mismatchOffset: at, reports: [] });
        },
      ),
      { numRuns: 500 },
    );
  });

  it('fifo-style reads in any try order', () => {
    const arb = quorumCaseArb({ readPatterns: ['fifo'] }).chain((c) =>
      fc.shuffledSubarray([...c.specs.keys()], { minLength: c.specs.length, maxLength: c.specs.length }).map((order) => ({ c, order })),
    );
    fc.assert(
      fc.property(arb, ({ c, order }) => {
        const input = { ...voteInputOf(c), order };
        expect(asModel(quorumVote(input), input.outcomes)).toEqual(modelFifoRead([...input.outcomes], order));
      }),
      { numRuns: 2000 },
    );
  });

  it('writes and flushes', () => {
    const arb = fc.integer({ min: 1, max: 7 }).chain((n) =>
      fc.record({
        threshold: fc.integer({ min: 1, max: n }),
        op: fc.constantFrom('write' as const, 'flush' as const),
        outcomes: fc.array(
          fc.oneof(fc.constant<ChildOutcome>({ ok: true }), fc.constantFrom(...BLOCK_ERROR_CODES).map((code): ChildOutcome => ({ ok: false, code }))),
          { minLength: n, maxLength: n },
        ),
      }),
    );
    fc.assert(
      fc.property(arb, ({ threshold, op, outcomes }) => {
        const expected = modelCompletion(outcomes, threshold, op === 'write');
        expect(asModel(quorumVote({ op, threshold, outcomes }), outcomes)).toEqual(expected);
      }),
      { numRuns: 3000 },
    );
  });

  it('"with 5 children and threshold 3, any 2 bad copies are outvoted" (the documented example)', () => {
    fc.assert(
      fc.property(quorumCaseArb({ children: 5, threshold: 3, maxBad: 2 }), (c) => {
        const r = quorumVote(voteInputOf(c));
        return r.ok && r.source !== undefined && c.specs[r.source].kind === 'good';
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses inconsistent input with EINVAL', () => {
    const data = { ok: true, data: new Uint8Array(2) } as const;
    const bad: VoteInput[] = [
      { outcomes: [], threshold: 1 },
      { outcomes: [data], threshold: 0 },
      { outcomes: [data], threshold: 2 },
      { outcomes: [data], threshold: 1.5 },
      { outcomes: [data, data, data], threshold: 2, blkverify: true },
      { outcomes: [data, { ok: true, data: new Uint8Array(3) }], threshold: 1 },
      { outcomes: [data, { ok: true as const }], threshold: 1 },
      { outcomes: [data, data], threshold: 1, readPattern: 'fifo' as const, order: [0, 0] },
      { outcomes: [data, data], threshold: 1, readPattern: 'fifo' as const, rewriteCorrupted: true },
      { outcomes: [data, data], threshold: 1, readPattern: 'mirror' as never },
    ];
    for (const input of bad) expect(() => quorumVote(input)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});

describe('testing arbitraries', () => {
  it('corrupt variants differ from the good data and from each other', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 16 }), fc.integer({ min: 0, max: 253 }), (good, v) => {
        const a = outcomeOf({ kind: 'corrupt', variant: v }, good);
        const b = outcomeOf({ kind: 'corrupt', variant: v + 1 }, good);
        if (!a.ok || !b.ok) return false;
        return hex(a.data!) !== hex(good) && hex(a.data!) !== hex(b.data!);
      }),
    );
  });

  it('build maxBad in rather than filtering: even when every drawn outcome is bad, cases come out', () => {
    // With a filter, 7 always-bad children and maxBad 2 could never be generated at all.
    const seen = new Set<number>();
    fc.assert(
      fc.property(quorumCaseArb({ children: 7, maxBad: 2, weights: { good: 0 } }), (c) => {
        const bad = c.specs.filter((s) => s.kind !== 'good').length;
        expect(bad).toBe(2);
        c.specs.forEach((s, i) => s.kind !== 'good' && seen.add(i));
      }),
      { numRuns: 200 },
    );
    // The bad children are spread over every position, not stuck at the first ones.
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    fc.assert(fc.property(quorumCaseArb({ children: 7, maxBad: 0 }), (c) => c.specs.every((s) => s.kind === 'good')), { numRuns: 100 });
  });

  it('corrupt a random non-empty sub-range per variant, so mismatches are found anywhere', () => {
    const offsets = new Set<number>();
    fc.assert(
      fc.property(quorumCaseArb({ children: 2, length: { min: 8, max: 32 }, weights: { good: 1, corrupt: 1, error: 0 } }), (c) => {
        c.corruptions.forEach((r, variant) => {
          expect(r.start).toBeGreaterThanOrEqual(0);
          expect(r.end).toBeGreaterThan(r.start);
          expect(r.end).toBeLessThanOrEqual(c.good.length);
          const bytes = corruptedCopy(c.good, variant, r);
          // Exactly the range differs from the good bytes.
          bytes.forEach((b, i) => expect(b !== c.good[i]).toBe(i >= r.start && i < r.end));
        });
        const [a, b] = [caseBytes(c, 0), caseBytes(c, 1)];
        const r = quorumVote({ threshold: 2, blkverify: true, outcomes: [{ ok: true, data: a }, { ok: true, data: b }] });
        if (r.mismatchOffset !== undefined) offsets.add(r.mismatchOffset);
      }),
      { numRuns: 300 },
    );
    expect([...offsets].some((o) => o > 0)).toBe(true);
    expect(offsets.size).toBeGreaterThan(5);
  });

  it('respect maxBad, fixed sizes and disabled errors', () => {
    fc.assert(
      fc.property(quorumCaseArb({ children: 4, maxBad: 1, codes: [] }), (c) => {
        expect(c.specs).toHaveLength(4);
        expect(c.specs.filter((s) => s.kind !== 'good').length).toBeLessThanOrEqual(1);
        expect(c.specs.some((s) => s.kind === 'error')).toBe(false);
      }),
      { numRuns: 200 },
    );
    fc.assert(fc.property(childOutcomeSpecArb({ variants: 0, codes: ['ENOSPC'] }), (s) => s.kind !== 'corrupt' && (s.kind !== 'error' || s.code === 'ENOSPC')));
  });
});
