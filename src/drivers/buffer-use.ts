/**
 * What a MemoryDriver still uses of each buffer it adopted from immutable writes. A kept chunk
 * view holds its whole ArrayBuffer alive: a shared 32 MiB write whose chunks were mostly
 * discarded would pin all of it. So each adopted buffer gets a record counting the chunks that
 * still view it and remembering where they may be, and a buffer used a quarter or less is copied
 * out (by the driver) so that it can go.
 */

/**
 * A buffer is copied out once a driver uses no more than this share of it, and a write that would
 * keep no more is copied rather than adopted.
 */
export const MIN_USED_SHARE = 4;
/**
 * Past this many recorded ranges, a record is rebuilt from the chunks that still view its buffer;
 * after that, once the list has doubled since its last rebuild (a buffer kept at many scattered
 * places cannot shrink, and rebuilding on every write would make each write scan them all).
 */
const MAX_RANGES = 64;

/** One driver's use of one adopted buffer. */
export interface BufferUse {
  readonly buffer: ArrayBufferLike;
  /** Chunks that are views of it. */
  live: number;
  /**
   * Where they may be: pairs of first chunk index and count, from every adoption (some stale), in
   * the first `rangeEnd` slots. Emptied by resetting `rangeEnd`: truncating the array would free
   * its storage, and a pooled buffer needs it again on its next write.
   */
  ranges: number[];
  rangeEnd: number;
  /** `rangeEnd` past which the ranges are rebuilt. */
  rebuildAt: number;
  /** Waiting in the driver's list of buffers to copy out. */
  queued: boolean;
}

/** Whether chunk `index` of the driver still views the record's buffer. */
export type StillViews = (use: BufferUse, index: number) => boolean;

/** A record for a buffer the driver has not used yet. */
export function newBufferUse(buffer: ArrayBufferLike): BufferUse {
  return { buffer, live: 0, ranges: [], rangeEnd: 0, rebuildAt: 2 * MAX_RANGES, queued: false };
}

/** Whether `whole` chunks of `chunkSize` are enough of `buffer` to keep it (see MIN_USED_SHARE). */
export function worthKeeping(whole: number, chunkSize: number, buffer: ArrayBufferLike): boolean {
  return whole > 0 && whole * chunkSize * MIN_USED_SHARE > buffer.byteLength;
}

/** Records `count` chunks from index `first` on as views of the record's buffer. */
export function addUse(use: BufferUse, first: number, count: number, views: StillViews): void {
  use.live += count;
  const r = use.ranges;
  const end = use.rangeEnd;
  // Consecutive chunk-sized writes from one buffer extend one range.
  if (end > 0 && r[end - 2]! + r[end - 1]! === first) {
    r[end - 1]! += count;
    return;
  }
  r[end] = first;
  r[end + 1] = count;
  use.rangeEnd = end + 2;
  if (use.rangeEnd > use.rebuildAt) {
    use.ranges = rebuiltRanges(use, views);
    use.rangeEnd = use.ranges.length;
    use.rebuildAt = Math.max(2 * MAX_RANGES, 2 * use.rangeEnd);
  }
}

/**
 * Takes `count` chunks off the record. True when the buffer has just become used so little that
 * it should be copied out (the record is then marked queued; the caller queues it).
 */
export function dropUse(use: BufferUse, count: number, chunkSize: number): boolean {
  use.live -= count;
  if (use.live <= 0) {
    use.live = 0;
    use.rangeEnd = 0;
    use.rebuildAt = 2 * MAX_RANGES;
    return false;
  }
  if (use.queued || worthKeeping(use.live, chunkSize, use.buffer)) return false;
  use.queued = true;
  return true;
}

/** Chunk indexes that may still view the record's buffer (stale ones included: check each). */
export function* recordedIndexes(use: BufferUse): Generator<number> {
  const r = use.ranges;
  for (let k = 0; k < use.rangeEnd; k += 2) {
    for (let i = r[k]!; i < r[k]! + r[k + 1]!; i++) yield i;
  }
}

/** The recorded ranges cut down to the chunks that still view the record's buffer. */
function rebuiltRanges(use: BufferUse, views: StillViews): number[] {
  const seen = new Set<number>();
  for (const i of recordedIndexes(use)) if (views(use, i)) seen.add(i);
  const out: number[] = [];
  for (const i of [...seen].sort((a, b) => a - b)) {
    if (out.length > 0 && out[out.length - 2]! + out[out.length - 1]! === i) out[out.length - 1]!++;
    else out.push(i, 1);
  }
  return out;
}
