/**
 * The quorum decision as a pure function: given what every child answered, what does the quorum
 * answer, whom does it report and whom does it repair? Users call {@link quorumVote} to property-test
 * their own configurations without any I/O; {@link Quorum} applies the same rules through the
 * unvalidated `decide*` entry points, and skips them when every child succeeded and agreed (the
 * rules then always say: success, nobody reported).
 */
import { BlockError, mostCommonCode, type BlockErrorCode } from '../errors.js';
import { asBuffer } from '../buffers/as-buffer.js';
import { versionsOf } from './versions.js';

/** How a quorum reads: vote among all children, or read one child and fall back on failure. */
export type ReadPattern = 'quorum' | 'fifo' | 'round-robin' | 'least-pending';

/** Every {@link ReadPattern}, in a fixed order. */
export const READ_PATTERNS: readonly ReadPattern[] = Object.freeze(['quorum', 'fifo', 'round-robin', 'least-pending']);

/** The operation a vote decides. Discard and write-zeroes vote exactly like `write`. */
export type VoteOp = 'read' | 'write' | 'flush';

/**
 * What one child answered. A successful read carries its bytes; a successful write or flush
 * carries none. A failure carries the child's error code.
 */
export type ChildOutcome =
  | { readonly ok: true; readonly data?: Uint8Array }
  | { readonly ok: false; readonly code: BlockErrorCode };

/** Input of {@link quorumVote}. */
export interface VoteInput {
  /** Default `read`. */
  readonly op?: VoteOp;
  /** One outcome per child, in child order. */
  readonly outcomes: readonly ChildOutcome[];
  /** Successful (and, for reads, agreeing) children needed; 1 ≤ threshold ≤ outcomes.length. */
  readonly threshold: number;
  /** Default `quorum`. Only reads look at it. */
  readonly readPattern?: ReadPattern;
  /** Repair children of losing versions (quorum reads only). */
  readonly rewriteCorrupted?: boolean;
  /** Any difference between the two children fails the read (quorum reads only). */
  readonly blkverify?: boolean;
  /**
   * The order a fifo-style read tries children in (a permutation of the child indexes; default
   * 0, 1, 2, …). Round-robin and least-pending reads are fifo reads with a rotated or sorted order.
   */
  readonly order?: readonly number[];
}

/** One `report-bad` a vote asks for: the child index and, for a failed request, its error code. */
export interface VoteReport {
  readonly child: number;
  readonly code?: BlockErrorCode;
}

/** Output of {@link quorumVote}. */
export interface VoteResult {
  /** The request succeeds. */
  readonly ok: boolean;
  /** Error code of a failed request. */
  readonly code?: BlockErrorCode;
  /** For a successful read: index of a child whose bytes are the answer. */
  readonly source?: number;
  /**
   * Children to report, each at most once: in child order for quorum reads, writes and flushes;
   * in the order tried for fifo-style reads.
   */
  readonly reports: readonly VoteReport[];
  /** Children to rewrite with the answer (quorum reads with rewriteCorrupted), in child order. */
  readonly rewrite: readonly number[];
  /** A `failure` event is due (after the reports). */
  readonly failure: boolean;
  /** blkverify only: the first byte, relative to the request, where the two children differ. */
  readonly mismatchOffset?: number;
  /**
   * Quorum reads only, present (true) when a losing version also reached the threshold: the winner
   * was chosen by vote count or by the tie-break rule alone. Losers are still reported, but nobody
   * is rewritten, since the "corrupted" copies may well be the right ones.
   */
  readonly ambiguous?: true;
}

/**
 * Decides one quorum request. The rules (also in docs/quorum.md):
 *
 * - write / flush: each failed child is reported with its code. At least `threshold` successes →
 *   success. Otherwise fail with the most common failure code (ties: the first failing child's);
 *   a write also raises `failure`, a flush does not (as QEMU).
 * - quorum read: each failed child is reported. Fewer than `threshold` successes → fail with the
 *   voted code + `failure`. If every successful copy is identical it is the answer. Otherwise equal
 *   copies form versions; the one with most votes wins, ties going to the version holding the
 *   lowest child index. Winner votes < threshold → EIO + `failure` (losers are not reported).
 *   Else each child of a losing version is reported without a code and, with rewriteCorrupted,
 *   rewritten — unless a losing version also has `threshold` votes (`ambiguous`: the winner was
 *   chosen by count or tie-break alone, so nothing is overwritten). In blkverify mode any
 *   difference → EIO + `failure` naming the first differing byte.
 * - fifo-style read: children are tried in `order`; each failure is reported; the first success is
 *   the answer; if all fail, the last failure's code (no `failure` event, as QEMU).
 *
 * Validates its input (EINVAL on inconsistent input); {@link Quorum} uses the same rules through
 * unvalidated internal entry points.
 */
export function quorumVote(input: VoteInput): VoteResult {
  checkInput(input);
  const { outcomes, threshold } = input;
  const op = input.op ?? 'read';
  if (op !== 'read') return decideCompletion(outcomes.map((o) => (o.ok ? undefined : o.code)), threshold, op === 'write');
  const pattern = input.readPattern ?? 'quorum';
  if (pattern !== 'quorum') return decideInOrder(outcomes, input.order);
  return decideRead(outcomes, threshold, input.rewriteCorrupted === true, input.blkverify === true);
}

/**
 * Internal: a write, write-zeroes, discard or flush, given each child's error code (undefined
 * where it succeeded). No validation.
 */
export function decideCompletion(codes: readonly (BlockErrorCode | undefined)[], threshold: number, isWrite: boolean): VoteResult {
  const reports: VoteReport[] = [];
  for (let child = 0; child < codes.length; child++) {
    const code = codes[child];
    if (code !== undefined) reports.push({ child, code });
  }
  if (codes.length - reports.length >= threshold) return { ok: true, reports, rewrite: NONE, failure: false };
  return { ok: false, code: votedCode(reports), reports, rewrite: NONE, failure: isWrite };
}

/** Internal: a fifo-style read that tried children in `order` (default 0, 1, 2, …). No validation. */
export function decideInOrder(outcomes: readonly ChildOutcome[], order: readonly number[] | undefined): VoteResult {
  const reports: VoteReport[] = [];
  let last: BlockErrorCode = 'EIO';
  for (let k = 0; k < outcomes.length; k++) {
    const child = order === undefined ? k : order[k];
    const outcome = outcomes[child];
    if (outcome.ok) return { ok: true, source: child, reports, rewrite: NONE, failure: false };
    reports.push({ child, code: outcome.code });
    last = outcome.code;
  }
  return { ok: false, code: last, reports, rewrite: NONE, failure: false };
}

/** Internal: a quorum-pattern read. No validation. */
export function decideRead(
  outcomes: readonly ChildOutcome[],
  threshold: number,
  rewriteCorrupted: boolean,
  blkverify: boolean,
): VoteResult {
  const reports: VoteReport[] = [];
  const readers: number[] = [];
  const copies: Uint8Array[] = [];
  for (let child = 0; child < outcomes.length; child++) {
    const o = outcomes[child];
    if (o.ok) {
      readers.push(child);
      copies.push(o.data ?? missingData(child));
    } else reports.push({ child, code: o.code });
  }
  if (readers.length < threshold) return { ok: false, code: votedCode(reports), reports, rewrite: NONE, failure: true };

  if (blkverify) {
    // Both children succeeded (threshold is 2): a single differing byte fails the read.
    const at = firstDifference(copies[0], copies[1]);
    if (at === -1) return { ok: true, source: readers[0], reports, rewrite: NONE, failure: false };
    return { ok: false, code: 'EIO', reports, rewrite: NONE, failure: true, mismatchOffset: at };
  }

  const versions = versionsOf(copies);
  if (versions.length === 1) return { ok: true, source: readers[0], reports, rewrite: NONE, failure: false };

  // versionsOf lists versions by their lowest member, so the first maximum is the tie-break winner.
  let winner = versions[0];
  for (const v of versions) if (v.length > winner.length) winner = v;
  if (winner.length < threshold) return { ok: false, code: 'EIO', reports, rewrite: NONE, failure: true };

  const losers: number[] = [];
  let ambiguous = false;
  for (const v of versions) {
    if (v === winner) continue;
    if (v.length >= threshold) ambiguous = true;
    for (const k of v) losers.push(readers[k]);
  }
  losers.sort((a, b) => a - b);
  for (const child of losers) reports.push({ child });
  reports.sort((a, b) => a.child - b.child);
  const result: VoteResult = {
    ok: true,
    source: readers[winner[0]],
    reports,
    rewrite: rewriteCorrupted && !ambiguous ? losers : NONE,
    failure: false,
  };
  return ambiguous ? { ...result, ambiguous: true } : result;
}

const NONE: readonly number[] = Object.freeze([]);

function votedCode(reports: readonly VoteReport[]): BlockErrorCode {
  return mostCommonCode(reports.map((r) => r.code ?? 'EIO'));
}

/** Index of the first differing byte of two equal-length arrays, or -1. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const x = asBuffer(a);
  const y = asBuffer(b);
  if (x.equals(y)) return -1;
  // Only reached on a mismatch: narrow down with memcmp on halves before scanning bytes.
  let lo = 0;
  let hi = x.length;
  while (hi - lo > 64) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (x.subarray(lo, mid).equals(y.subarray(lo, mid))) lo = mid;
    else hi = mid;
  }
  for (let i = lo; i < hi; i++) if (x[i] !== y[i]) return i;
  return -1;
}

function missingData(child: number): never {
  throw new BlockError('EINVAL', `quorumVote: successful read outcome of child ${child} has no data`);
}

function checkInput(input: VoteInput): void {
  const { outcomes, threshold } = input;
  const n = outcomes.length;
  const bad = (why: string): never => {
    throw new BlockError('EINVAL', `quorumVote: ${why}`);
  };
  if (n < 1) bad('at least one child outcome is needed');
  if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > n) {
    bad(`threshold ${threshold} must be an integer from 1 to ${n}`);
  }
  if (input.blkverify === true && (n !== 2 || threshold !== 2)) bad('blkverify needs exactly 2 children and threshold 2');
  const pattern = input.readPattern ?? 'quorum';
  if (!READ_PATTERNS.includes(pattern)) bad(`unknown readPattern ${String(pattern)}`);
  if (pattern !== 'quorum' && (input.blkverify === true || input.rewriteCorrupted === true)) {
    bad('blkverify and rewriteCorrupted need readPattern quorum');
  }
  if (input.order !== undefined) {
    const seen = new Set(input.order);
    if (input.order.length !== n || seen.size !== n || input.order.some((i) => !(Number.isInteger(i) && i >= 0 && i < n))) {
      bad('order must be a permutation of the child indexes');
    }
  }
  if ((input.op ?? 'read') === 'read') {
    let length: number | undefined;
    for (const o of outcomes) {
      if (!o.ok || o.data === undefined) continue;
      length ??= o.data.length;
      if (o.data.length !== length) bad('successful reads must all have the same length');
    }
  }
}
