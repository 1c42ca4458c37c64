/**
 * Pure helpers that shape structured replies: block-status extents as the spec wants them
 * (aligned, one for REQ_ONE, 32-bit lengths unless wide), and the plan of a sparse READ reply
 * (which ranges go out as data and which as holes).
 */
import type { BlockExtent } from '../../types.js';
import { BaseAllocation, type StatusExtent } from '../protocol/index.js';

/** base:allocation flags of an extent. */
export function allocationFlags(e: BlockExtent): number {
  return (e.allocated ? 0 : BaseAllocation.STATE_HOLE) | (e.zero ? BaseAllocation.STATE_ZERO : 0);
}

/**
 * Turns a driver's extents (contiguous from `offset`, inside the request, non-empty) into the
 * descriptors of one BLOCK_STATUS chunk: at most `maxExtents` (1 for REQ_ONE), each nonzero, each
 * ending on a multiple of `minBlockSize` unless it ends the request, and each below 2^32 unless
 * `wide`. When the first extent is shorter than the alignment, one aligned extent with flags 0
 * ("allocated, contents unknown" — always a truthful answer) is sent instead.
 */
export function statusExtents(
  extents: readonly BlockExtent[],
  offset: number,
  length: number,
  minBlockSize: number,
  maxExtents: number,
  wide: boolean,
): StatusExtent[] {
  const end = offset + length;
  const limit = wide ? Number.MAX_SAFE_INTEGER : 0xffffffff - (0xffffffff % minBlockSize);
  const out: StatusExtent[] = [];
  let pos = offset;
  for (const e of extents) {
    if (out.length >= maxExtents || pos >= end) break;
    let stop = Math.min(e.offset + e.length, end);
    if (stop !== end && minBlockSize > 1) stop -= stop % minBlockSize;
    if (stop - pos > limit) stop = pos + limit;
    if (stop <= pos) break;
    const flags = allocationFlags(e);
    const last = out[out.length - 1];
    if (last !== undefined && last.flags === flags && last.length + (stop - pos) <= limit) {
      out[out.length - 1] = { length: last.length + (stop - pos), flags };
    } else {
      out.push({ length: stop - pos, flags });
    }
    pos = stop;
    if (stop !== Math.min(e.offset + e.length, end)) break;
  }
  if (out.length === 0) out.push({ length: Math.min(minBlockSize, length, limit), flags: 0 });
  return out;
}

/** One piece of a sparse READ reply. */
export interface ReadPiece {
  readonly hole: boolean;
  readonly offset: number;
  readonly length: number;
}

/**
 * Plans a READ reply from the range's extents: the part of a zero extent aligned to `align` (the
 * driver's minimum block size), if at least `minHole` bytes, becomes a hole; everything else
 * (including what the extents do not cover) is data. Every piece is then aligned too, so the
 * driver can read each data piece (a driver may report zeros at a finer grain than it can read).
 * Returns undefined when the whole range is data — then a plain single-chunk reply is best.
 */
export function planSparseRead(
  extents: readonly BlockExtent[],
  offset: number,
  length: number,
  minHole: number,
  align = 1,
): ReadPiece[] | undefined {
  const end = offset + length;
  const pieces: ReadPiece[] = [];
  const push = (hole: boolean, from: number, to: number): void => {
    if (to <= from) return;
    const last = pieces[pieces.length - 1];
    if (last !== undefined && last.hole === hole) pieces[pieces.length - 1] = { hole, offset: last.offset, length: to - last.offset };
    else pieces.push({ hole, offset: from, length: to - from });
  };
  let pos = offset;
  for (const e of extents) {
    if (pos >= end || e.offset !== pos) break;
    const stop = Math.min(e.offset + e.length, end);
    const holeFrom = Math.ceil(pos / align) * align;
    const holeTo = Math.floor(stop / align) * align;
    if (e.zero && holeTo - holeFrom >= minHole) {
      push(false, pos, holeFrom);
      push(true, holeFrom, holeTo);
      push(false, holeTo, stop);
    } else {
      push(false, pos, stop);
    }
    pos = stop;
  }
  push(false, pos, end);
  return pieces.some((p) => p.hole) ? pieces : undefined;
}
