/**
 * FaultInjector rules: their validation and which requests they apply to.
 */
import { BLOCK_ERROR_CODES, type BlockErrorCode } from '../errors.js';
import { BLOCK_OPS, type BlockOp } from './ops.js';

/** An operation a fault rule can target. */
export type FaultOp = BlockOp;

/** What to fail (or corrupt), when, and how often. See docs/filters.md. */
export interface FaultRule {
  /** Operations the rule applies to (default: every operation). */
  readonly ops?: readonly FaultOp[];
  /**
   * Only requests overlapping this byte range. Flush has no range and always matches when `ops`
   * includes it (which the default does).
   */
  readonly range?: { readonly offset: number; readonly length: number };
  /** Code to fail with (default EIO); ignored when `corrupt` is set. */
  readonly error?: BlockErrorCode;
  /**
   * Instead of failing, let reads succeed with the bytes inside `range` altered. Corrupting rules
   * apply to reads only, so `ops` must be omitted or `['read']`.
   */
  readonly corrupt?: boolean;
  /** Byte XORed into every corrupted byte, 1..255 (default 0xff, which flips every bit). */
  readonly corruptWith?: number;
  /** Let the first N matching calls through, then fire (default 0). */
  readonly afterCalls?: number;
  /** Fire at most this many times (default unlimited). */
  readonly times?: number;
  /** Probability in [0, 1] that a matching call fires, drawn from the injector's seeded generator. */
  readonly rate?: number;
}

/** A rule after validation, with every default filled in. */
export interface CheckedRule {
  readonly ops: ReadonlySet<FaultOp>;
  readonly range: { readonly offset: number; readonly length: number } | undefined;
  readonly error: BlockErrorCode;
  readonly corrupt: boolean;
  readonly corruptWith: number;
  readonly afterCalls: number;
  readonly times: number;
  readonly rate: number | undefined;
}

/** Validates a rule; a malformed one is a programming mistake (TypeError or RangeError). */
export function checkRule(rule: FaultRule): CheckedRule {
  if (typeof rule !== 'object' || rule === null) throw new TypeError('a fault rule must be an object');
  const corrupt = rule.corrupt === true;
  let ops: ReadonlySet<FaultOp>;
  if (rule.ops === undefined) ops = new Set(corrupt ? ['read'] : BLOCK_OPS);
  else {
    if (!Array.isArray(rule.ops)) throw new TypeError('ops must be an array of operation names');
    for (const op of rule.ops) if (!BLOCK_OPS.includes(op)) throw new RangeError(`unknown operation ${String(op)}`);
    ops = new Set(rule.ops);
    if (corrupt && (ops.size !== 1 || !ops.has('read'))) throw new RangeError("a corrupting rule applies to reads only: ops must be ['read']");
  }
  let range: CheckedRule['range'];
  if (rule.range !== undefined) {
    const { offset, length } = rule.range;
    if (!isCount(offset) || !isCount(length)) {
      throw new RangeError(`range must have non-negative safe-integer offset and length, got ${offset}+${length}`);
    }
    if (offset + length > Number.MAX_SAFE_INTEGER) throw new RangeError('range ends past 2^53');
    range = { offset, length };
  }
  const error = rule.error ?? 'EIO';
  if (!BLOCK_ERROR_CODES.includes(error)) throw new RangeError(`unknown error code ${String(error)}`);
  const corruptWith = rule.corruptWith ?? 0xff;
  if (!Number.isInteger(corruptWith) || corruptWith < 1 || corruptWith > 255) {
    throw new RangeError(`corruptWith must be an integer from 1 to 255, got ${corruptWith}`);
  }
  const afterCalls = rule.afterCalls ?? 0;
  if (!isCount(afterCalls)) throw new RangeError(`afterCalls must be a non-negative safe integer, got ${afterCalls}`);
  const times = rule.times ?? Infinity;
  if (times !== Infinity && !isCount(times)) throw new RangeError(`times must be a non-negative safe integer, got ${times}`);
  const rate = rule.rate;
  if (rate !== undefined && !(typeof rate === 'number' && rate >= 0 && rate <= 1)) {
    throw new RangeError(`rate must be a probability from 0 to 1, got ${rate}`);
  }
  return { ops, range, error, corrupt, corruptWith, afterCalls, times, rate };
}

/** True when the rule applies to this request (before counting, timing and chance). */
export function ruleMatches(rule: CheckedRule, op: FaultOp, offset: number, length: number): boolean {
  if (!rule.ops.has(op)) return false;
  if (op === 'flush' || rule.range === undefined) return true;
  const { range } = rule;
  // An empty range contains no byte, so nothing overlaps it.
  return range.length > 0 && offset < range.offset + range.length && range.offset < offset + length;
}

/** XORs the part of `target` (holding the device bytes from `offset`) that lies inside the range. */
export function corruptBytes(rule: CheckedRule, offset: number, target: Uint8Array): void {
  const from = rule.range === undefined ? 0 : Math.max(0, rule.range.offset - offset);
  const to = rule.range === undefined ? target.length : Math.min(target.length, rule.range.offset + rule.range.length - offset);
  for (let i = from; i < to; i++) target[i] ^= rule.corruptWith;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
