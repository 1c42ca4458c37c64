/**
 * Cutting requests to what the wire and the server accept.
 *
 * Reads and writes are cut by the base class at `limits.maxTransfer` (the server's maximum block
 * size). TRIM, WRITE_ZEROES and BLOCK_STATUS carry no payload, so the maximum block size does not
 * bind them, but in compact (non-extended) headers their length is a 32-bit field: they are cut
 * here into the largest pieces below 4 GiB that keep the server's preferred alignment.
 */

/** Largest value of the 32-bit length field of a compact request. */
export const MAX_COMPACT_LENGTH = 0xffff_ffff;

/**
 * The largest piece length ≤ `limit` that is a multiple of `alignment` (a power of two, at most
 * `limit`). With alignment 4096 and the compact limit this is 0xfffff000.
 */
export function largestAlignedPiece(limit: number, alignment: number): number {
  if (!(alignment >= 1) || alignment > limit) throw new RangeError(`alignment ${alignment} must be from 1 to ${limit}`);
  return Math.floor(limit / alignment) * alignment;
}

/** One piece of a split range. */
export interface RangePiece {
  readonly offset: number;
  readonly length: number;
}

/**
 * Cuts `offset+length` into consecutive pieces of at most `maxPiece` bytes. Every piece but the
 * last has exactly `maxPiece` bytes, so when offset, length and maxPiece are aligned so is every
 * piece. An empty range gives no pieces.
 */
export function splitRange(offset: number, length: number, maxPiece: number): RangePiece[] {
  if (!(maxPiece >= 1)) throw new RangeError(`maxPiece must be positive, got ${maxPiece}`);
  const pieces: RangePiece[] = [];
  for (let done = 0; done < length; done += maxPiece) {
    pieces.push({ offset: offset + done, length: Math.min(maxPiece, length - done) });
  }
  return pieces;
}
