/**
 * Combines the children's block-status answers: a byte reads as zero only if it does on every
 * child (a single replica holding data makes it data), and it is allocated if any child allocates it.
 */
import type { BlockExtent } from '../types.js';

/**
 * Merges per-child extent lists that each start at `offset` and are contiguous. The result covers
 * the range every child answered for (children may stop short; callers loop).
 */
export function mergeBlockStatus(answers: readonly (readonly BlockExtent[])[], offset: number): BlockExtent[] {
  const ends = answers.map((list) => {
    const last = list[list.length - 1];
    return last.offset + last.length;
  });
  const end = Math.min(...ends);
  const cursor = answers.map(() => 0);
  const out: BlockExtent[] = [];
  let pos = offset;
  while (pos < end) {
    let stop = end;
    let zero = true;
    let allocated = false;
    answers.forEach((list, c) => {
      // Advance this child's cursor to the extent holding `pos`.
      while (list[cursor[c]].offset + list[cursor[c]].length <= pos) cursor[c]++;
      const e = list[cursor[c]];
      stop = Math.min(stop, e.offset + e.length);
      zero &&= e.zero;
      allocated ||= e.allocated;
    });
    const prev = out[out.length - 1];
    if (prev !== undefined && prev.zero === zero && prev.allocated === allocated) {
      out[out.length - 1] = { ...prev, length: stop - prev.offset };
    } else {
      out.push({ offset: pos, length: stop - pos, zero, allocated });
    }
    pos = stop;
  }
  return out;
}
