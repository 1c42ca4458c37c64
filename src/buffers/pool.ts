/**
 * Buffers that come back. A fresh 1 MiB allocation costs about three times the copy that fills it
 * (the kernel maps and zeroes new pages, and the garbage collector has to find it again), so large
 * buffers — a quorum's shared write copies, an NBD server's READ replies and WRITE payloads — are
 * taken from here. Each is tracked (see ownership.ts) and returns to the pool when its last holder
 * lets it go: the taker's `give`, and any driver that adopted it. Sizes are binned, rounded up to
 * a quarter of their power of two, so a power-of-two request is exact, none wastes more than a
 * quarter, and nearby sizes share buffers; a bounded number of idle bytes is kept.
 */
import { releaseBuffer, trackAgain, trackMemory, type HoldsRecord } from './ownership.js';

/** Idle memory kept for reuse by one pool; beyond it, returned buffers are left to the GC. */
const DEFAULT_IDLE_BYTES = 64 * 1024 * 1024;
/** Below this, `Buffer.allocUnsafe` is cheap enough (small sizes share Node's slab): not pooled. */
const MIN_POOLED = 64 * 1024;

/** The pooled size serving `length`: rounded up to a multiple of a quarter of its power of two. */
export function binSize(length: number): number {
  // clz32 where it applies: Math.log2 costs a tenth of a microsecond on every pooled take.
  const log2 = length < 2 ** 31 ? 31 - Math.clz32(length) : Math.floor(Math.log2(length));
  const step = 2 ** Math.max(0, log2 - 2);
  return Math.ceil(length / step) * step;
}

/** A pooled buffer with the one callback that brings it back, made once for its lifetime. */
interface Entry {
  readonly buf: Buffer;
  readonly free: () => void;
  readonly holds: HoldsRecord;
}

/** A pool of large buffers (see the module comment). */
export class BufferPool {
  readonly #idle = new Map<number, Entry[]>();
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
    const entry = list?.pop();
    // An emptied bin keeps its list (there are few bins): in a steady state one buffer goes out
    // and comes back per request, and dropping and remaking the list each time costs more.
    if (entry === undefined) {
      // A whole ArrayBuffer per buffer (holds are counted per ArrayBuffer), not zero-filled: the
      // taker overwrites it. Tracked from birth, held by the taker.
      const buf = Buffer.allocUnsafeSlow(bin);
      const free = (): void => this.#giveBack(fresh);
      const fresh: Entry = { buf, free, holds: trackMemory(buf, free) };
      return buf;
    }
    this.#idleBytes -= bin;
    trackAgain(entry.holds, entry.free);
    return entry.buf;
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

  #giveBack(entry: Entry): void {
    const size = entry.buf.length;
    if (this.#closed || this.#idleBytes + size > this.#maxIdleBytes) return;
    let list = this.#idle.get(size);
    if (list === undefined) this.#idle.set(size, (list = []));
    list.push(entry);
    this.#idleBytes += size;
  }
}
