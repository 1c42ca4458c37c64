/**
 * Reusable buffers for large READ replies and WRITE payloads. Allocating a fresh megabyte per
 * request costs more than copying it: the memory comes from mmap, every page faults on first
 * touch, and the garbage collector has to find it again. Buffers are binned by size rounded up to
 * a quarter of its power of two (so a power-of-two request is exact and none wastes more than a
 * quarter), and only a bounded number of bytes is kept.
 */

/** Below this, `Buffer.allocUnsafe` is cheap enough (and small sizes share Node's slab). */
const MIN_POOLED = 64 * 1024;

/** A pool of large buffers (see the module comment). */
export class BufferPool {
  readonly #maxBytes: number;
  readonly #free = new Map<number, Buffer[]>();
  /** Backing store → the whole pooled buffer, to recognise (and re-whole) views handed back. */
  readonly #owned = new WeakMap<ArrayBufferLike, Buffer>();
  #freeBytes = 0;

  /** `maxBytes` bounds the bytes kept idle in the pool (in use buffers are not counted). */
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes idle in the pool. */
  get freeBytes(): number {
    return this.#freeBytes;
  }

  /** A buffer of at least `length` bytes (a pooled one for large sizes). Contents are arbitrary. */
  take(length: number): Buffer {
    if (length < MIN_POOLED) return Buffer.allocUnsafe(length);
    const bin = binSize(length);
    const list = this.#free.get(bin);
    const reused = list?.pop();
    if (reused !== undefined) {
      this.#freeBytes -= bin;
      return reused;
    }
    const fresh = Buffer.allocUnsafeSlow(bin);
    this.#owned.set(fresh.buffer, fresh);
    return fresh;
  }

  /**
   * Returns a buffer (or any view of it) taken from this pool; anything else is ignored. The caller
   * must not touch it afterwards.
   */
  give(view: Uint8Array): void {
    const whole = this.#owned.get(view.buffer);
    if (whole === undefined) return;
    const bin = whole.length;
    if (this.#freeBytes + bin > this.#maxBytes) return;
    let list = this.#free.get(bin);
    if (list === undefined) this.#free.set(bin, (list = []));
    list.push(whole);
    this.#freeBytes += bin;
  }
}

/** The pooled size serving `length`: rounded up to a multiple of a quarter of its power of two. */
export function binSize(length: number): number {
  const step = 2 ** Math.max(0, Math.floor(Math.log2(length)) - 2);
  return Math.ceil(length / step) * step;
}
