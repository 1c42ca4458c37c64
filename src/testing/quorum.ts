/**
 * fast-check arbitraries for quorum outcomes, so users can property-test their own quorum
 * configurations with {@link quorumVote} and no I/O:
 *
 * ```ts
 * // "with 5 children and threshold 3, any 2 bad copies are outvoted"
 * fc.assert(fc.property(quorumCaseArb({ children: 5, threshold: 3, maxBad: 2 }), (c) => {
 *   const r = quorumVote(voteInputOf(c));
 *   return r.ok && r.source !== undefined && c.specs[r.source].kind === 'good';
 * }));
 * ```
 */
import fc from 'fast-check';
import { BLOCK_ERROR_CODES, type BlockErrorCode } from '../errors.js';
import type { ChildOutcome, ReadPattern, VoteInput } from '../quorum/vote.js';

/**
 * What one child does, symbolically: return the good data, return corrupted data (copies with the
 * same `variant` are identical, different variants differ), or fail with an error code.
 */
export type ChildOutcomeSpec =
  | { readonly kind: 'good' }
  | { readonly kind: 'corrupt'; readonly variant: number }
  | { readonly kind: 'error'; readonly code: BlockErrorCode };

/** A generated quorum read: options, the good bytes, and one outcome spec per child. */
export interface QuorumCase {
  readonly threshold: number;
  readonly readPattern: ReadPattern;
  readonly rewriteCorrupted: boolean;
  readonly blkverify: boolean;
  readonly good: Uint8Array;
  readonly specs: readonly ChildOutcomeSpec[];
}

/** Options of {@link childOutcomeSpecArb}. */
export interface ChildOutcomeSpecArbOptions {
  /** Number of distinct corruptions to draw from (default 3; 0 disables corruption). */
  readonly variants?: number;
  /** Codes a failing child may return (default every code). Empty disables errors. */
  readonly codes?: readonly BlockErrorCode[];
  /** Relative weights of good / corrupt / error (default 3 / 1 / 1). */
  readonly weights?: { readonly good?: number; readonly corrupt?: number; readonly error?: number };
}

/** Any block error code (or one of `codes`). */
export function blockErrorCodeArb(codes: readonly BlockErrorCode[] = BLOCK_ERROR_CODES): fc.Arbitrary<BlockErrorCode> {
  return fc.constantFrom(...codes);
}

/** One child's symbolic outcome. */
export function childOutcomeSpecArb(options: ChildOutcomeSpecArbOptions = {}): fc.Arbitrary<ChildOutcomeSpec> {
  const variants = options.variants ?? 3;
  const codes = options.codes ?? BLOCK_ERROR_CODES;
  const w = { good: 3, corrupt: 1, error: 1, ...options.weights };
  const arbs: fc.WeightedArbitrary<ChildOutcomeSpec>[] = [{ weight: w.good, arbitrary: fc.constant({ kind: 'good' as const }) }];
  if (variants > 0 && w.corrupt > 0) {
    arbs.push({
      weight: w.corrupt,
      arbitrary: fc.integer({ min: 0, max: variants - 1 }).map((variant) => ({ kind: 'corrupt' as const, variant })),
    });
  }
  if (codes.length > 0 && w.error > 0) {
    arbs.push({ weight: w.error, arbitrary: blockErrorCodeArb(codes).map((code) => ({ kind: 'error' as const, code })) });
  }
  return fc.oneof(...arbs);
}

/** Options of {@link quorumCaseArb}. Numbers fix a value; ranges let fast-check choose. */
export interface QuorumCaseArbOptions extends ChildOutcomeSpecArbOptions {
  /** Number of children, or a range (default 1..7). */
  readonly children?: number | { readonly min: number; readonly max: number };
  /** Threshold (default any from 1 to the number of children). */
  readonly threshold?: number;
  /** Read patterns to draw from (default just `quorum`). */
  readonly readPatterns?: readonly ReadPattern[];
  /** Draw rewriteCorrupted (quorum pattern only; default: both values). */
  readonly rewriteCorrupted?: boolean;
  /** Allow blkverify cases (2 children, threshold 2; default false). */
  readonly blkverify?: boolean;
  /** At most this many children are not `good` (default unlimited). */
  readonly maxBad?: number;
  /** Length of the data in bytes (default 1..32). */
  readonly length?: number | { readonly min: number; readonly max: number };
}

/** A whole quorum read: options, good data and every child's outcome. */
export function quorumCaseArb(options: QuorumCaseArbOptions = {}): fc.Arbitrary<QuorumCase> {
  const range = (v: number | { min: number; max: number } | undefined, d: { min: number; max: number }) =>
    typeof v === 'number' ? fc.constant(v) : fc.integer(v ?? d);
  const patterns = options.readPatterns ?? ['quorum'];
  return fc
    .record({
      n: range(options.children, { min: 1, max: 7 }),
      good: range(options.length, { min: 1, max: 32 }).chain((len) => fc.uint8Array({ minLength: len, maxLength: len })),
      pattern: fc.constantFrom(...patterns),
      rewrite: options.rewriteCorrupted === undefined ? fc.boolean() : fc.constant(options.rewriteCorrupted),
      verify: options.blkverify === true ? fc.boolean() : fc.constant(false),
    })
    .chain(({ n, good, pattern, rewrite, verify }) => {
      const blkverify = verify && pattern === 'quorum';
      const count = blkverify ? 2 : n;
      const threshold = blkverify ? fc.constant(2) : options.threshold !== undefined ? fc.constant(options.threshold) : fc.integer({ min: 1, max: count });
      const specs = fc
        .array(childOutcomeSpecArb(options), { minLength: count, maxLength: count })
        .filter((s) => options.maxBad === undefined || s.filter((x) => x.kind !== 'good').length <= options.maxBad);
      return fc.record({ threshold, specs }).map(
        ({ threshold: t, specs: s }): QuorumCase => ({
          threshold: t,
          readPattern: pattern,
          rewriteCorrupted: rewrite && pattern === 'quorum' && !blkverify,
          blkverify,
          good,
          specs: s,
        }),
      );
    });
}

/**
 * The bytes a corrupted child of `variant` returns: every byte of `good` XOR (variant + 1), so
 * variants 0 to 254 all differ from `good` and from each other.
 */
export function corruptedCopy(good: Uint8Array, variant: number): Uint8Array {
  const mask = (variant % 255) + 1;
  return good.map((b) => b ^ mask);
}

/** Turns one spec into a concrete {@link ChildOutcome}. */
export function outcomeOf(spec: ChildOutcomeSpec, good: Uint8Array): ChildOutcome {
  if (spec.kind === 'error') return { ok: false, code: spec.code };
  return { ok: true, data: spec.kind === 'good' ? good : corruptedCopy(good, spec.variant) };
}

/** The {@link VoteInput} of a generated case, ready for `quorumVote`. */
export function voteInputOf(c: QuorumCase): VoteInput {
  return {
    threshold: c.threshold,
    readPattern: c.readPattern,
    rewriteCorrupted: c.rewriteCorrupted,
    blkverify: c.blkverify,
    outcomes: c.specs.map((s) => outcomeOf(s, c.good)),
  };
}
