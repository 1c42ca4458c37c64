/**
 * Block status aligned to a minimum block size. The NBD spec makes servers report extents in
 * whole blocks, but some do not (nbdkit's extentlist, say), and a quorum merging children of
 * different block sizes finds boundaries at the finest of them; callers' next request starts
 * where an extent ends, and the driver contract refuses an unaligned one. So, as qemu does, an
 * extent's end is rounded down to a block boundary, and a block split between extents gets their
 * flags merged the careful way: allocated if any part is, zero only if every part is.
 */
import type { BlockExtent } from './types.js';

/** `extents` (contiguous from an aligned `offset`) in whole blocks of `align` bytes. */
export function alignExtents(extents: readonly BlockExtent[], align: number): BlockExtent[] {
  if (align <= 1 || extents.length === 0) return [...extents];
  const start = extents[0].offset;
  const last = extents[extents.length - 1];
  const reportedEnd = last.offset + last.length;
  const out: BlockExtent[] = [];
  const push = (offset: number, length: number, allocated: boolean, zero: boolean): void => {
    const prev = out[out.length - 1];
    if (prev !== undefined && prev.allocated === allocated && prev.zero === zero) out[out.length - 1] = { ...prev, length: prev.length + length };
    else out.push({ offset, length, allocated, zero });
  };
  let pos = start;
  let i = 0;
  // An unaligned end of what was reported counts only up to its block boundary (callers ask again
  // from there) — unless that leaves nothing: then the first block is answered from what is known.
  // (The request covers whole blocks, so that block lies inside it.)
  const end = Math.max(Math.floor(reportedEnd / align) * align, start + align);
  while (pos < end) {
    while (i < extents.length - 1 && extents[i].offset + extents[i].length <= pos) i++;
    const e = extents[i];
    const eEnd = Math.min(e.offset + e.length, end);
    const whole = eEnd === end ? eEnd : Math.floor(eEnd / align) * align;
    if (whole > pos) {
      push(pos, whole - pos, e.allocated, e.zero);
      pos = whole;
      continue;
    }
    // `e` ends inside the block at `pos`: merge every extent that touches the block.
    const blockEnd = Math.min(pos + align, end);
    const { allocated, zero } = mergeTouching(extents, i, pos, blockEnd, reportedEnd);
    push(pos, blockEnd - pos, allocated, zero);
    pos = blockEnd;
  }
  return out;
}

/**
 * What `[from, to)` holds, from every extent (searched from index `first`) that touches it, merged
 * the careful way: allocated if any part is, zero only if every part is. Bytes past `reportedEnd`,
 * which nobody reported on, count as data.
 */
export function mergeTouching(
  extents: readonly BlockExtent[],
  first: number,
  from: number,
  to: number,
  reportedEnd: number,
): { allocated: boolean; zero: boolean } {
  if (to > reportedEnd) return { allocated: true, zero: false };
  let allocated = false;
  let zero = true;
  for (let j = first; j < extents.length && extents[j].offset < to; j++) {
    if (extents[j].offset + extents[j].length <= from) continue;
    allocated ||= extents[j].allocated;
    zero &&= extents[j].zero;
  }
  return { allocated, zero };
}
