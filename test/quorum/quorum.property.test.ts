/**
 * Proof (a): Quorum, doing real I/O over MemoryDrivers behind FaultInjectors, agrees with the
 * independent model on result, error code, events and rewrites for generated cases.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BLOCK_ERROR_CODES, type BlockErrorCode } from '../../src/errors.js';
import { quorumCaseArb } from '../../src/testing/quorum.js';
import { expectedEvents, rig, stage } from './harness.js';
import { hex, modelCompletion, modelFifoRead, modelQuorumRead, type ModelOutcome } from './model.js';

const SIZE = 96;

describe('Quorum agrees with the model', () => {
  it('on reads: result, error code, report-bad/failure events and rewrites', async () => {
    const arb = fc.record({
      c: quorumCaseArb({ blkverify: true, readPatterns: ['quorum', 'quorum', 'fifo', 'round-robin', 'least-pending'] }),
      offset: fc.integer({ min: 0, max: 64 }),
    });
    await fc.assert(
      fc.asyncProperty(arb, async ({ c, offset }) => {
        const n = c.specs.length;
        const r = rig(n, SIZE, {
          threshold: c.threshold,
          readPattern: c.readPattern,
          rewriteCorrupted: c.rewriteCorrupted,
          blkverify: c.blkverify,
        });
        const { outcomes, stored } = await stage(r, c, offset);
        const len = c.good.length;
        const exp =
          c.readPattern === 'quorum'
            ? modelQuorumRead(outcomes, c.threshold, c)
            : modelFifoRead(outcomes, [...Array(n).keys()]); // a fresh quorum starts every pattern at child 0

        const got = await r.quorum.read(offset, len).then(
          (data) => ({ ok: true as const, data }),
          (error: { code: BlockErrorCode; message: string }) => ({ ok: false as const, error }),
        );
        expect(got.ok).toBe(exp.ok);
        if (got.ok) expect(hex(got.data)).toBe(exp.dataHex);
        else {
          expect(got.error.code).toBe(exp.code);
          if (exp.mismatchAt !== undefined) expect(got.error.message).toContain(`mismatch at offset ${offset + exp.mismatchAt}`);
        }
        expect(r.events).toEqual(expectedEvents(exp, 'read', offset, len));
        // Rewritten children now hold the answer; every other child is untouched.
        for (let i = 0; i < n; i++) {
          const now = hex(await r.mems[i].read(offset, len));
          expect(now).toBe(exp.rewrite.includes(i) ? exp.dataHex : hex(stored[i]));
        }
        await r.quorum.close();
      }),
      { numRuns: 1500 },
    );
  });

  it('on writes, write-zeroes, discards and flushes', async () => {
    const outcome = fc.oneof(
      { weight: 3, arbitrary: fc.constant<BlockErrorCode | null>(null) },
      { weight: 2, arbitrary: fc.constantFrom<BlockErrorCode | null>(...BLOCK_ERROR_CODES) },
    );
    const arb = fc.integer({ min: 1, max: 6 }).chain((n) =>
      fc.record({
        threshold: fc.integer({ min: 1, max: n }),
        codes: fc.array(outcome, { minLength: n, maxLength: n }),
        op: fc.constantFrom('write', 'writeZeroes', 'discard', 'flush'),
        offset: fc.integer({ min: 0, max: 32 }),
        data: fc.uint8Array({ minLength: 1, maxLength: 32 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ threshold, codes, op, offset, data }) => {
        const n = codes.length;
        const r = rig(n, 64, { threshold });
        for (const m of r.mems) await m.write(0, new Uint8Array(64).fill(0xa5));
        // A quorum sends a discard to its children as write-zeroes (docs/quorum.md), so that is
        // what a failing child must refuse.
        const childOp = op === 'discard' ? 'writeZeroes' : op;
        codes.forEach((code, i) => {
          if (code !== null) r.faults[i].addRule({ ops: [childOp], error: code });
        });
        // A child whose native zeroing says ENOTSUP falls back to writing zeros (driver contract).
        const fails = (code: BlockErrorCode | null): code is BlockErrorCode => code !== null && !(childOp === 'writeZeroes' && code === 'ENOTSUP');
        const outcomes: ModelOutcome[] = codes.map((code) => (fails(code) ? { ok: false, code } : { ok: true }));
        const exp = modelCompletion(outcomes, threshold, op !== 'flush');
        const run = (): Promise<void> =>
          op === 'write'
            ? r.quorum.write(offset, data)
            : op === 'writeZeroes'
              ? r.quorum.writeZeroes(offset, data.length)
              : op === 'discard'
                ? r.quorum.discard(offset, data.length)
                : r.quorum.flush();
        const got = await run().then(
          () => null,
          (e: { code: BlockErrorCode }) => e.code,
        );
        expect(got).toBe(exp.ok ? null : exp.code);
        const [o, l] = op === 'flush' ? [0, 0] : [offset, data.length];
        expect(r.events).toEqual(expectedEvents(exp, op === 'flush' ? 'flush' : 'write', o, l));
        // Every child that accepted the request holds its bytes (data, or zeros for write-zeroes and
        // discard alike), whatever the verdict; the others still hold what they had before.
        const before = new Uint8Array(data.length).fill(0xa5);
        const wanted = op === 'write' ? data : new Uint8Array(data.length);
        if (op !== 'flush') {
          for (let i = 0; i < n; i++) {
            const now = hex(await r.mems[i].read(offset, data.length));
            expect(now).toBe(hex(fails(codes[i]) ? before : wanted));
          }
        }
        await r.quorum.close();
      }),
      { numRuns: 1500 },
    );
  });
});
