/**
 * The data types of the BlockDriver contract: capabilities, limits, options and extents.
 */

/**
 * What a driver can do. This is the driver's manifest: the base class checks it before calling an
 * implementation, the NBD server derives its transmission flags from it, and the conformance
 * suite chooses its tests by it.
 */
export interface BlockCapabilities {
  /** Writes, discards and write-zeroes are allowed (otherwise they fail with EPERM). */
  readonly canWrite: boolean;
  /** `flush()` reaches stable storage (otherwise it succeeds at once: there is nothing to flush). */
  readonly canFlush: boolean;
  /** FUA is native; otherwise the base class emulates it with a flush after the operation. */
  readonly canFua: boolean;
  /** `discard()` may free storage; otherwise it succeeds without effect (discard is advisory). */
  readonly canDiscard: boolean;
  /** `writeZeroes()` is native; otherwise the base class writes zero buffers. */
  readonly canZero: boolean;
  /** `writeZeroes({ fastZero: true })` is faster than writing; otherwise it fails with ENOTSUP. */
  readonly canFastZero: boolean;
  /** `blockStatus()` reports real holes and zeros; otherwise every range is reported as data. */
  readonly canBlockStatus: boolean;
  /**
   * Several independent users (e.g. NBD connections) may share the driver and a flush by any of
   * them makes every completed write of all of them durable and visible.
   */
  readonly canMultiConn: boolean;
  /** `cache()` prefetches; otherwise it succeeds without effect. */
  readonly canCache: boolean;
  /**
   * Writes with `immutable: true` are kept by reference rather than copied (MemoryDriver). Such a
   * driver holds what it keeps: `retainBuffer` for each view it keeps past the write, one
   * `releaseBuffer` for each when it lets the view go (overwritten, discarded, closed; a lease of
   * it holds it too) — writers such as Quorum reuse pooled memory once nobody holds it. Optional
   * so that drivers written before it need no change; absent means false.
   */
  readonly canAdoptWrites?: boolean;
}

/** Request-size constraints of a driver. All are in bytes. */
export interface BlockLimits {
  /**
   * Every offset and length must be a multiple of this (a power of two from 1 to 64 KiB).
   * Misaligned requests fail with EINVAL before they reach the implementation.
   */
  readonly minBlockSize: number;
  /** Requests aligned to and sized in multiples of this avoid read-modify-write (power of two). */
  readonly preferredBlockSize: number;
  /** The longest read or write a caller may issue; longer ones fail with EOVERFLOW. */
  readonly maxBlockSize: number;
  /**
   * The longest read or write the implementation receives in one call. The base class splits
   * longer requests into pieces of at most this size, so implementations never see more.
   */
  readonly maxTransfer: number;
}

/** Options every I/O accepts. */
export interface IoOptions {
  /**
   * Cancels the request before it is dispatched (ECANCELED). A request the base class splits (a
   * read or write over `maxTransfer`, an emulated writeZeroes) also stops between pieces, so a
   * cancelled write may have reached part of its range. Once an implementation has started, it
   * may honour the signal, but a request already on its way to storage is not torn back. An
   * aborted request either completes or fails with ECANCELED (ETIMEDOUT for a timeout signal),
   * and either way, once its promise settles, the driver no longer touches the caller's buffers.
   */
  readonly signal?: AbortSignal;
}

/** Options of `write`. */
export interface WriteOptions extends IoOptions {
  /** Force Unit Access: resolve only once the data is on stable storage. */
  readonly fua?: boolean;
  /**
   * The caller promises nobody will ever modify `data` again, so a driver may keep references to
   * it (adopt it) instead of copying. Drivers that ignore the hint copy as usual. Memory tracked
   * with `trackBuffer` (a pool's) may be reused once every holder has released it; see
   * `BlockCapabilities.canAdoptWrites` for what an adopting driver must do.
   */
  readonly immutable?: boolean;
}

/**
 * Read-only views of a driver's own memory for one range; see `BlockDriver.leaseRead`. Until it
 * is released the driver keeps these bytes unchanged (copy-on-write), so a holder may hand the
 * views to slow work such as a socket write without copying them first.
 */
export interface ReadLease {
  /** Views covering the range in order; their lengths add up to the requested length. Never modify them. */
  readonly views: readonly Uint8Array[];
  /** Ends the lease (idempotent). Until then the driver keeps these bytes unchanged (copy-on-write). */
  release(): void;
}

/** Options of `discard`. */
export interface DiscardOptions extends IoOptions {
  /** Resolve only once the discard is on stable storage. */
  readonly fua?: boolean;
}

/** Options of `writeZeroes`. */
export interface WriteZeroesOptions extends IoOptions {
  /** Resolve only once the zeros are on stable storage. */
  readonly fua?: boolean;
  /** The range may be deallocated (punched) as long as it reads back as zeros. */
  readonly mayUnmap?: boolean;
  /** Fail with ENOTSUP rather than zero slowly (NBD FAST_ZERO). */
  readonly fastZero?: boolean;
}

/** One run of bytes with the same allocation state, as reported by `blockStatus`. */
export interface BlockExtent {
  /** First byte of the run. */
  readonly offset: number;
  /** Bytes in the run (more than zero). */
  readonly length: number;
  /** The range reads as zeros. */
  readonly zero: boolean;
  /** The range has storage behind it (false is a hole: NBD's HOLE flag). */
  readonly allocated: boolean;
}

/** Lifecycle state of a driver. */
export type DriverState = 'open' | 'closing' | 'closed';

/** Default limits for drivers that do not state their own. */
export const DEFAULT_LIMITS: BlockLimits = Object.freeze({
  minBlockSize: 1,
  preferredBlockSize: 4096,
  maxBlockSize: 2 ** 31,
  maxTransfer: 2 ** 31,
});

/** Capabilities of a driver that can do nothing but read. */
export const NO_CAPABILITIES: BlockCapabilities = Object.freeze({
  canWrite: false,
  canFlush: false,
  canFua: false,
  canDiscard: false,
  canZero: false,
  canFastZero: false,
  canBlockStatus: false,
  canMultiConn: false,
  canCache: false,
});
