/**
 * Reusable read buffers for voting reads. A voting read needs one buffer per extra child; a fresh
 * 1 MiB allocation per child per read costs as much as the read itself and churns the GC, so
 * buffers are kept and handed out again. They never leave the quorum: the answer is in the
 * caller's buffer, so a buffer can be reused as soon as its read has been voted on.
 */

/** Buffers above this size are not kept (a rare huge read should not pin memory). */
const MAX_KEPT_BYTES = 16 * 1024 * 1024;

/** A small free list of byte buffers. */
export class ScratchPool {
  readonly #free: Uint8Array[] = [];
  readonly #limit: number;

  /** Keeps at most `limit` idle buffers. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** A buffer of exactly `length` bytes (contents undefined). */
  acquire(length: number): Uint8Array {
    const i = this.#free.findIndex((b) => b.byteLength >= length && b.byteLength <= length * 2);
    if (i === -1) return Buffer.allocUnsafeSlow(length);
    const [buf] = this.#free.splice(i, 1);
    return buf.byteLength === length ? buf : buf.subarray(0, length);
  }

  /** Gives buffers back; their full underlying allocation is reused. */
  release(buffers: readonly Uint8Array[]): void {
    for (const b of buffers) {
      const whole = new Uint8Array(b.buffer, 0, b.buffer.byteLength);
      if (whole.byteLength > MAX_KEPT_BYTES || this.#free.length >= this.#limit) continue;
      this.#free.push(whole);
    }
  }
}
