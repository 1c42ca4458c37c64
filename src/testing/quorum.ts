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

/** The bytes `[start, end)` of the good data that one corruption variant alters (never empty). */
export interface CorruptionRange {
  readonly start: number;
  readonly end: number;
}

/** A generated quorum read: options, the good bytes, and one outcome spec per child. */
export interface QuorumCase {
  readonly threshold: number;
  readonly readPattern: ReadPattern;
  readonly rewriteCorrupted: boolean;
  readonly blkverify: boolean;
  readonly good: Uint8Array;
  readonly specs: readonly ChildOutcomeSpec[];
  /**
   * Where each corruption variant alters the data (index = variant), so a mismatch can be
   * anywhere in the copy, not only at its first byte.
   */
  readonly corruptions: readonly CorruptionRange[];
}

/** Options of {@link childOutcomeSpecArb}. */
export interface ChildOutcomeSpecArbOptions {
  /** Number of distinct corruptions to draw from (default 3; 0 disables corruption; at most 255). */
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
  /** At most this many children are not `good` (default unlimited); built in, no case is discarded. */
  readonly maxBad?: number;
  /** Length of the data in bytes (default 1..32). */
  readonly length?: number | { readonly min: number; readonly max: number };
}

/**
 * A whole quorum read: options, good data, every child's outcome and where each corruption lies.
 * `maxBad` is built in, not filtered: at most `maxBad` children (chosen at random) may draw a bad
 * outcome, the others are good, so no generated case is thrown away.
 */
export function quorumCaseArb(options: QuorumCaseArbOptions = {}): fc.Arbitrary<QuorumCase> {
  const range = (v: number | { min: number; max: number } | undefined, d: { min: number; max: number }) =>
    typeof v === 'number' ? fc.constant(v) : fc.integer(v ?? d);
  const patterns = options.readPatterns ?? ['quorum'];
  const variants = Math.max(1, options.variants ?? 3);
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
      const mayBeBad = Math.min(count, options.maxBad ?? count);
      const specs = fc
        .tuple(
          fc.array(childOutcomeSpecArb(options), { minLength: count, maxLength: count }),
          fc.shuffledSubarray([...Array(count).keys()], { minLength: mayBeBad, maxLength: mayBeBad }),
        )
        .map(([drawn, allowed]) => drawn.map((spec, i): ChildOutcomeSpec => (allowed.includes(i) ? spec : GOOD)));
      const corruptions = fc.array(corruptionRangeArb(good.length), { minLength: variants, maxLength: variants });
      return fc.record({ threshold, specs, corruptions }).map(
        ({ threshold: t, specs: s, corruptions: r }): QuorumCase => ({
          threshold: t,
          readPattern: pattern,
          rewriteCorrupted: rewrite && pattern === 'quorum' && !blkverify,
          blkverify,
          good,
          specs: s,
          corruptions: r,
        }),
      );
    });
}

const GOOD: ChildOutcomeSpec = Object.freeze({ kind: 'good' });

/** A non-empty byte range inside data of `length` bytes. */
export function corruptionRangeArb(length: number): fc.Arbitrary<CorruptionRange> {
  return fc
    .integer({ min: 0, max: length - 1 })
    .chain((start) => fc.integer({ min: start + 1, max: length }).map((end) => ({ start, end })));
}

/**
 * The bytes a corrupted child of `variant` returns: the bytes of `good` inside `range` (default:
 * all of them) XOR (variant mod 255 + 1). Any two variants 0 to 254 differ from `good` and from
 * each other, whatever their (non-empty) ranges: where both ranges cover a byte the masks differ,
 * and where only one does that one differs from `good` and the other does not.
 */
export function corruptedCopy(good: Uint8Array, variant: number, range: CorruptionRange = { start: 0, end: good.length }): Uint8Array {
  const mask = (variant % 255) + 1;
  const out = Uint8Array.from(good);
  for (let i = range.start; i < range.end; i++) out[i] ^= mask;
  return out;
}

/** The bytes child `i` of a case holds: good, or its variant's corruption (an erroring child holds good bytes). */
export function caseBytes(c: QuorumCase, i: number): Uint8Array {
  const spec = c.specs[i];
  return spec.kind === 'corrupt' ? corruptedCopy(c.good, spec.variant, c.corruptions[spec.variant]) : c.good;
}

/**
 * Turns one spec into a concrete {@link ChildOutcome}; a corruption alters `corruptions[variant]`
 * (default: every byte).
 */
export function outcomeOf(spec: ChildOutcomeSpec, good: Uint8Array, corruptions: readonly CorruptionRange[] = []): ChildOutcome {
  if (spec.kind === 'error') return { ok: false, code: spec.code };
  return { ok: true, data: spec.kind === 'good' ? good : corruptedCopy(good, spec.variant, corruptions[spec.variant]) };
}

/** The {@link VoteInput} of a generated case, ready for `quorumVote`. */
export function voteInputOf(c: QuorumCase): VoteInput {
  return {
    threshold: c.threshold,
    readPattern: c.readPattern,
    rewriteCorrupted: c.rewriteCorrupted,
    blkverify: c.blkverify,
    outcomes: c.specs.map((s) => outcomeOf(s, c.good, c.corruptions)),
  };
}
