/**
 * Buffers that come back. A fresh 1 MiB allocation costs about three times the copy that fills it
 * (the kernel maps and zeroes new pages, and the garbage collector has to find it again), so large
 * buffers — a quorum's shared write copies, an NBD server's READ replies and WRITE payloads — are
 * taken from here. Each is tracked (see ownership.ts) and returns to the pool when its last holder
 * lets it go: the taker's `give`, and any driver that adopted it. Sizes are binned, rounded up to
 * a quarter of their power of two, so a power-of-two request is exact, none wastes more than a
 * quarter, and nearby sizes share buffers; a bounded number of idle bytes is kept.
 */
import { releaseBuffer, trackBuffer } from './ownership.js';

/** Idle memory kept for reuse by one pool; beyond it, returned buffers are left to the GC. */
const DEFAULT_IDLE_BYTES = 64 * 1024 * 1024;
/** Below this, `Buffer.allocUnsafe` is cheap enough (small sizes share Node's slab): not pooled. */
const MIN_POOLED = 64 * 1024;

/** The pooled size serving `length`: rounded up to a multiple of a quarter of its power of two. */
export function binSize(length: number): number {
  const step = 2 ** Math.max(0, Math.floor(Math.log2(length)) - 2);
  return Math.ceil(length / step) * step;
}

/** A pool of large buffers (see the module comment). */
export class BufferPool {
  readonly #idle = new Map<number, Buffer[]>();
  readonly #maxIdleBytes: number;
  #idleBytes = 0;
  #closed = false;

  /** `maxIdleBytes` bounds the bytes kept for reuse (buffers in use are not counted). */
  constructor(maxIdleBytes = DEFAULT_IDLE_BYTES) {
    this.#maxIdleBytes = maxIdleBytes;
  }

  /** Bytes waiting for reuse. */
  get idleBytes(): number {
    return this.#idleBytes;
  }

  /**
   * A buffer of at least `length` bytes (its bin's size) with unspecified contents. From 64 KiB on
   * it is pooled and tracked, held once by the caller, who ends that hold with {@link give}
   * (holders it handed the buffer to add their own); smaller ones are plain allocations.
   */
  take(length: number): Buffer {
    if (length < MIN_POOLED) return Buffer.allocUnsafe(length);
    const bin = binSize(length);
    const list = this.#idle.get(bin);
    let buf = list?.pop();
    if (buf !== undefined) {
      this.#idleBytes -= bin;
      if (list!.length === 0) this.#idle.delete(bin);
    } else {
      // A whole ArrayBuffer per buffer (holds are counted per ArrayBuffer), not zero-filled: the
      // taker overwrites it.
      buf = Buffer.allocUnsafeSlow(bin);
    }
    const whole = buf;
    trackBuffer(whole, () => this.#giveBack(whole));
    return whole;
  }

  /**
   * Ends the taker's hold on a buffer from {@link take} (or any view of it); anything else is
   * ignored. Call it exactly once per take, and touch the buffer no more afterwards.
   */
  give(view: Uint8Array): void {
    releaseBuffer(view);
  }

  /** Drops idle buffers and stops keeping returned ones. */
  close(): void {
    this.#closed = true;
    this.#idle.clear();
    this.#idleBytes = 0;
  }

  #giveBack(buf: Buffer): void {
    if (this.#closed || this.#idleBytes + buf.length > this.#maxIdleBytes) return;
    let list = this.#idle.get(buf.length);
    if (list === undefined) this.#idle.set(buf.length, (list = []));
    list.push(buf);
    this.#idleBytes += buf.length;
  }
}
