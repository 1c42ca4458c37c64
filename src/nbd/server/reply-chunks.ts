/**
 * Pure helpers that shape structured replies: block-status extents as the spec wants them
 * (aligned, one for REQ_ONE, 32-bit lengths unless wide), and the plan of a sparse READ reply
 * (which ranges go out as data and which as holes).
 */
import { mergeTouching } from '../../align-extents.js';
import type { BlockExtent } from '../../types.js';
import { BaseAllocation, type StatusExtent } from '../protocol/index.js';

/** base:allocation flags of an extent. */
export function allocationFlags(e: BlockExtent): number {
  return (e.allocated ? 0 : BaseAllocation.STATE_HOLE) | (e.zero ? BaseAllocation.STATE_ZERO : 0);
}

/**
 * Descriptor boundaries inside a reply fall on multiples of this many bytes, whatever the export's
 * minimum block size. qemu reads block status in 512-byte sectors and widens a zero run to whole
 * sectors, so a boundary inside a sector makes `qemu-img convert` skip the data after it; the spec
 * asks for lengths in multiples of 512 where possible.
 */
const SECTOR = 512;

/**
 * Turns a driver's extents (contiguous from `offset`, inside the request, non-empty) into the
 * descriptors of one BLOCK_STATUS chunk: at most `maxExtents` (1 for REQ_ONE), each nonzero, each
 * ending on a multiple of the minimum block size and of 512 (absolute offsets) unless it ends the
 * request, and each below 2^32 unless `wide`. A block split between extents gets their flags
 * merged the careful way (allocated if any part is, zero only if every part is), and bytes the
 * driver did not report on count as data, so every descriptor is truthful.
 */
export function statusExtents(
  extents: readonly BlockExtent[],
  offset: number,
  length: number,
  minBlockSize: number,
  maxExtents: number,
  wide: boolean,
): StatusExtent[] {
  const grain = Math.max(minBlockSize, SECTOR);
  const end = offset + length;
  const reported = reportedEnd(extents, offset, end);
  // First in whole blocks, of any length; then cut to the 32-bit limit and the count.
  const blocks: StatusExtent[] = [];
  const append = (len: number, flags: number): void => {
    const last = blocks[blocks.length - 1];
    if (last !== undefined && last.flags === flags) blocks[blocks.length - 1] = { length: last.length + len, flags };
    else blocks.push({ length: len, flags });
  };
  let pos = offset;
  let i = 0;
  // Only the last entry can still grow, so one past the count is enough.
  while (pos < end && blocks.length <= maxExtents) {
    const blockEnd = Math.min(Math.floor(pos / grain) * grain + grain, end);
    // Past what the driver reported the client asks again, unless nothing would be answered.
    if (blockEnd > reported && pos !== offset) break;
    while (i < extents.length && extents[i].offset + extents[i].length <= pos) i++;
    const e = extents[i];
    const eEnd = e === undefined ? pos : Math.min(e.offset + e.length, end);
    if (e !== undefined && eEnd >= blockEnd) {
      const to = eEnd === end ? end : Math.floor(eEnd / grain) * grain;
      append(to - pos, allocationFlags(e));
      pos = to;
    } else {
      append(blockEnd - pos, allocationFlags({ offset: pos, length: blockEnd - pos, ...mergeTouching(extents, i, pos, blockEnd, reported) }));
      pos = blockEnd;
    }
  }
  const limit = wide ? Number.MAX_SAFE_INTEGER : 0xffffffff;
  const out: StatusExtent[] = [];
  let from = offset;
  for (const b of blocks) {
    const stop = from + b.length;
    while (from < stop) {
      if (out.length >= maxExtents) return out;
      const to = stop - from <= limit ? stop : Math.floor((from + limit) / grain) * grain;
      out.push({ length: to - from, flags: b.flags });
      from = to;
    }
  }
  return out;
}

/** Where the driver's contiguous answer from `offset` stops (at most `end`). */
function reportedEnd(extents: readonly BlockExtent[], offset: number, end: number): number {
  let pos = offset;
  for (const e of extents) {
    if (e.offset !== pos) break;
    pos = e.offset + e.length;
  }
  return Math.min(pos, end);
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
