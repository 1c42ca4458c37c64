/**
 * Buffers that come back. A fresh 1 MiB allocation costs about three times the copy that fills it
 * (the kernel maps and zeroes new pages), so a writer that hands immutable copies to adopting
 * drivers takes them from here: each buffer is tracked (see ownership.ts) and returns to the pool
 * when its last holder lets it go, to be filled again by a later write.
 */
import { releaseBuffer, trackBuffer } from './ownership.js';

/** Idle memory kept for reuse by one pool; beyond it, returned buffers are left to the GC. */
const DEFAULT_IDLE_BYTES = 64 * 1024 * 1024;

export class BufferPool {
  readonly #idle = new Map<number, Uint8Array[]>();
  readonly #maxIdleBytes: number;
  #idleBytes = 0;
  #closed = false;

  constructor(maxIdleBytes = DEFAULT_IDLE_BYTES) {
    this.#maxIdleBytes = maxIdleBytes;
  }

  /** Bytes waiting for reuse. */
  get idleBytes(): number {
    return this.#idleBytes;
  }

  /**
   * A tracked buffer of exactly `length` bytes with unspecified contents, held once by the caller,
   * who ends that hold with `releaseBuffer` (holders it handed the buffer to add their own).
   */
  take(length: number): Uint8Array {
    const list = this.#idle.get(length);
    const reused = list?.pop();
    let buf: Uint8Array;
    if (reused !== undefined) {
      this.#idleBytes -= length;
      if (list!.length === 0) this.#idle.delete(length);
      buf = reused;
    } else {
      // A whole ArrayBuffer per buffer (holds are counted per ArrayBuffer), not zero-filled: the
      // taker overwrites it.
      buf = new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
    }
    trackBuffer(buf, () => this.#giveBack(buf));
    return buf;
  }

  /** Ends the caller's hold on a buffer from {@link take}. */
  give(buf: Uint8Array): void {
    releaseBuffer(buf);
  }

  /** Drops idle buffers and stops keeping returned ones. */
  close(): void {
    this.#closed = true;
    this.#idle.clear();
    this.#idleBytes = 0;
  }

  #giveBack(buf: Uint8Array): void {
    if (this.#closed || this.#idleBytes + buf.length > this.#maxIdleBytes) return;
    let list = this.#idle.get(buf.length);
    if (list === undefined) this.#idle.set(buf.length, (list = []));
    list.push(buf);
    this.#idleBytes += buf.length;
  }
}
