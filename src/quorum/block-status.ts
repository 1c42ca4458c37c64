/**
 * A quorum's block status: a byte reads as zero only if it does on every child (a single replica
 * holding data makes it data), and it is allocated if any child allocates it; a block of the
 * quorum's minimum size the children split is zero only if all of it is, allocated if any is.
 */
import { alignExtents } from '../align-extents.js';
import { mostCommonCode, type BlockError } from '../errors.js';
import type { BlockExtent, IoOptions } from '../types.js';
import type { QuorumChild } from './child.js';
import { issueBlockStatus, settleAll } from './fan-out.js';
import { readAborted, tooFewSucceeded } from './failures.js';
import type { QuorumReporter } from './reporter.js';

/**
 * Asks every child and merges the answers. A child whose answer fails is reported (`report-bad`,
 * type `read`, with its error) and the whole range is answered as allocated data, as QEMU does:
 * without that child's word nothing can be called zero. Only when no child answers does the
 * request fail, with the voted code (and, like a flush, no `failure` event). A caller's abort is
 * ECANCELED and reports nobody.
 */
export async function blockStatusOf(
  quorum: string,
  kids: readonly QuorumChild[],
  reporter: QuorumReporter,
  offset: number,
  length: number,
  options: IoOptions,
  minBlockSize: number,
): Promise<BlockExtent[]> {
  const answers = new Array<BlockExtent[]>(kids.length);
  const pending = kids.map((c, i) => issueBlockStatus(c, offset, length, options, answers, i));
  const errors = await settleAll(kids, pending);
  // Children of finer block sizes than the quorum's meet at boundaries the quorum cannot address.
  // (The base class cuts the answer at the request's end, which may be an unaligned device end.)
  if (errors === undefined) return alignExtents(mergeBlockStatus(answers, offset), minBlockSize);
  if (options.signal?.aborted === true) throw readAborted(quorum, offset, length, options.signal);
  errors.forEach((e, i) => {
    if (e !== undefined) reporter.reportBad(kids[i], 'read', offset, length, e);
  });
  if (errors.every((e) => e !== undefined)) {
    const code = mostCommonCode(errors.map((e) => (e as BlockError).code));
    throw tooFewSucceeded({ quorum, op: 'blockStatus', offset, length, children: kids, errors }, code, 1);
  }
  return [{ offset, length, zero: false, allocated: true }];
}

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
