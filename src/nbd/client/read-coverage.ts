/**
 * Bookkeeping for one structured READ reply: which bytes of the request its OFFSET_DATA and
 * OFFSET_HOLE chunks have covered so far.
 *
 * The protocol lets a server answer a read in any number of chunks, in any order, but every chunk
 * must lie inside the request, no two may overlap, and a successful reply must cover every byte
 * before its DONE chunk. A server that breaks any of these can no longer be trusted about which
 * bytes the caller's buffer holds, so the caller fails the request with EIO and drops the
 * connection.
 */

/** Tracks the covered ranges of one read, relative to the request's start. */
export class ReadCoverage {
  readonly offset: number;
  readonly length: number;
  /** Covered bytes so far. With no overlaps allowed, `covered === length` means full coverage. */
  #covered = 0;
  // Sorted, disjoint [start, end) pairs relative to `offset`, flattened. Nearly every reply is one
  // chunk, so a flat array with binary search beats any tree here.
  #ranges: number[] = [];

  constructor(offset: number, length: number) {
    this.offset = offset;
    this.length = length;
  }

  /** Bytes covered so far. */
  get covered(): number {
    return this.#covered;
  }

  /** Every byte of the request is covered. */
  get complete(): boolean {
    return this.#covered === this.length;
  }

  /**
   * Records a chunk at absolute `offset` of `length` bytes. Returns why it is a protocol
   * violation, or undefined when it is acceptable (and then records it).
   */
  add(offset: number, length: number): string | undefined {
    const start = offset - this.offset;
    const end = start + length;
    if (!(length > 0)) return `empty chunk at ${offset}`;
    if (start < 0 || end > this.length) {
      return `chunk ${offset}+${length} lies outside the request ${this.offset}+${this.length}`;
    }
    const r = this.#ranges;
    // Find the first stored range whose end is after `start`.
    let lo = 0;
    let hi = r.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (r[2 * mid + 1] <= start) lo = mid + 1;
      else hi = mid;
    }
    if (lo < r.length / 2 && r[2 * lo] < end) {
      return `chunk ${offset}+${length} overlaps data already received`;
    }
    // Merge with touching neighbours so the list stays short for in-order replies.
    const touchesPrev = lo > 0 && r[2 * lo - 1] === start;
    const touchesNext = lo < r.length / 2 && r[2 * lo] === end;
    if (touchesPrev && touchesNext) {
      r[2 * lo - 1] = r[2 * lo + 1];
      r.splice(2 * lo, 2);
    } else if (touchesPrev) r[2 * lo - 1] = end;
    else if (touchesNext) r[2 * lo] = start;
    else r.splice(2 * lo, 0, start, end);
    this.#covered += length;
    return undefined;
  }

  /** Forgets everything received: the request is about to be sent again. */
  reset(): void {
    this.#covered = 0;
    this.#ranges = [];
  }
}
