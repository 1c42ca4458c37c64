/**
 * Reusable read buffers for voting reads. A voting read needs one buffer per extra child; a fresh
 * 1 MiB allocation per child per read costs as much as the read itself and churns the GC, so
 * buffers are kept and handed out again. They never leave the quorum: the answer is in the
 * caller's buffer, so a buffer can be reused as soon as its read has been voted on.
 */

/** Buffers above this size are never kept (a rare huge read should not pin memory). */
const MAX_BUFFER_BYTES = 4 * 1024 * 1024;

/** A small free list of byte buffers, bounded in total bytes, emptied by {@link ScratchPool.clear}. */
export class ScratchPool {
  readonly #free: Uint8Array[] = [];
  readonly #maxBytes: number;
  #keptBytes = 0;

  /** Keeps at most `maxBytes` of idle buffers. */
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes held by idle buffers. */
  get keptBytes(): number {
    return this.#keptBytes;
  }

  /**
   * A buffer of exactly `length` bytes (contents undefined). Idle buffers of exactly that length
   * are reused as they are; a longer one (up to twice as long) is handed out as a view.
   */
  acquire(length: number): Uint8Array {
    const free = this.#free;
    let best = -1;
    for (let i = free.length - 1; i >= 0; i--) {
      const size = free[i].byteLength;
      if (size === length) {
        best = i;
        break;
      }
      if (size > length && size <= length * 2 && (best === -1 || size < free[best].byteLength)) best = i;
    }
    if (best === -1) return Buffer.allocUnsafeSlow(length);
    const buf = free[best];
    free[best] = free[free.length - 1];
    free.pop();
    this.#keptBytes -= buf.byteLength;
    return buf.byteLength === length ? buf : buf.subarray(0, length);
  }

  /** Gives a buffer from {@link ScratchPool.acquire} back; its whole allocation is reused. */
  release(buffer: Uint8Array): void {
    const whole =
      buffer.byteOffset === 0 && buffer.byteLength === buffer.buffer.byteLength
        ? buffer
        : Buffer.from(buffer.buffer, 0, buffer.buffer.byteLength);
    const size = whole.byteLength;
    if (size > MAX_BUFFER_BYTES || this.#keptBytes + size > this.#maxBytes) return;
    this.#free.push(whole);
    this.#keptBytes += size;
  }

  /** Drops every idle buffer. */
  clear(): void {
    this.#free.length = 0;
    this.#keptBytes = 0;
  }
}
