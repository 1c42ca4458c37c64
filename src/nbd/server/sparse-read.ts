/**
 * READ replies that skip holes: when structured replies are on, a large read of a partly sparse
 * range goes out as OFFSET_DATA chunks for the data and OFFSET_HOLE chunks for the zeros, which
 * saves the bandwidth (and the client the copy) of sending zeros.
 */
import type { BlockDriver } from '../../driver.js';
import { Limits, encodeHoleChunk, writeOffsetDataHeader, type NbdRequest } from '../protocol/index.js';
import type { BufferPool } from '../../buffers/pool.js';
import { allPieces } from '../../all-pieces.js';
import { readInPieces } from './driver-pieces.js';
import type { ReadPiece } from './reply-chunks.js';

/**
 * Decides when a read is worth a block-status call. Asking costs one call per read and never pays
 * on dense data, so after a probe finds no hole the next probes are spaced out (1, 2, 4 … 32
 * reads apart); finding a hole resets the spacing.
 */
export class HoleProbe {
  #skip = 0;
  #backoff = 0;

  /** Whether to look for holes before this read. */
  shouldProbe(): boolean {
    if (this.#skip === 0) return true;
    this.#skip--;
    return false;
  }

  /** Records what the last probe found. */
  found(holes: boolean): void {
    if (holes) {
      this.#backoff = 0;
      return;
    }
    this.#backoff = Math.min(32, Math.max(1, 2 * this.#backoff));
    this.#skip = this.#backoff;
  }
}

/**
 * Reads the data pieces of `plan` and returns every chunk of the reply but the final NONE, in
 * order: data chunks in pooled buffers (header and data in one), hole chunks as small buffers. On
 * failure the pooled buffers are given back once every read has settled, and the promise rejects
 * with the error of the first piece (in reply order) that failed.
 */
export async function readPieces(
  driver: BlockDriver,
  pool: BufferPool,
  extended: boolean,
  req: NbdRequest,
  plan: readonly ReadPiece[],
): Promise<Buffer[]> {
  const head = (extended ? Limits.EXTENDED_REPLY_SIZE : Limits.STRUCTURED_REPLY_SIZE) + 8;
  const buffers: Buffer[] = [];
  const reads: Promise<void>[] = [];
  for (const piece of plan) {
    if (piece.hole) {
      buffers.push(encodeHoleChunk(extended, req, 0, piece.offset, piece.length));
    } else {
      const buf = pool.take(head + piece.length).subarray(0, head + piece.length);
      writeOffsetDataHeader(buf, 0, extended, req, 0, piece.offset, piece.length);
      buffers.push(buf);
      reads.push(readInPieces(driver, piece.offset, buf.subarray(head)));
    }
  }
  // Every read must settle before any buffer goes back: a driver may write into its target until
  // its own promise settles, and a buffer back in the pool can already belong to another READ.
  try {
    await allPieces(reads);
  } catch (err) {
    for (const b of buffers) pool.give(b);
    throw err;
  }
  return buffers;
}
