/**
 * Sending one request to several children and collecting how each ended, without a wrapper
 * promise or result object per child: requests are issued in one synchronous loop (so in-memory
 * children do their work back to back, with no promise hop in between), then awaited together.
 * Nothing is allocated for the outcome when every child succeeds.
 */
import { toBlockError, type BlockError } from '../errors.js';
import type { BlockExtent, DiscardOptions, IoOptions, WriteOptions, WriteZeroesOptions } from '../types.js';
import type { BlockDriver } from '../driver.js';
import type { QuorumChild } from './child.js';

/** The requests a quorum sends to every child. A discard goes out as write-zeroes (see capabilities.ts). */
export type FanOutOp = 'write' | 'writeZeroes' | 'discard' | 'flush';

const NO_OPTIONS: WriteZeroesOptions = Object.freeze({});
const UNMAP: WriteZeroesOptions = Object.freeze({ mayUnmap: true });
const UNMAP_FUA: WriteZeroesOptions = Object.freeze({ mayUnmap: true, fua: true });

/**
 * The options a child receives. The caller's abort signal is never passed on: once a write is
 * dispatched it goes to every child, so a cancelled write cannot land on some replicas only, and a
 * child is never blamed (reported) for the caller's change of mind.
 */
export function childOptions(op: FanOutOp, options: WriteOptions & WriteZeroesOptions & DiscardOptions): WriteOptions & WriteZeroesOptions {
  if (op === 'flush') return NO_OPTIONS;
  if (op === 'discard') return options.fua === true ? UNMAP_FUA : UNMAP;
  if (options.signal === undefined) return options;
  if (op === 'write') return { fua: options.fua, immutable: options.immutable };
  return { fua: options.fua, mayUnmap: options.mayUnmap, fastZero: options.fastZero };
}

/** Starts `op` on one child, counted as pending until {@link settleAll} sees it settle. */
export function issue(child: QuorumChild, op: FanOutOp, offset: number, length: number, data: Uint8Array | undefined, options: IoOptions): Promise<void> {
  child.begin();
  try {
    const d = child.driver;
    if (op === 'write') return d.write(offset, data as Uint8Array, options);
    if (op === 'flush') return d.flush(options);
    return d.writeZeroes(offset, length, options);
  } catch (err) {
    // A driver whose method threw instead of rejecting: the same failure, delivered the same way.
    return Promise.reject(err);
  }
}

/** Starts a read of `target.length` bytes at `offset` on one child (see {@link issue}). */
export function issueRead(child: QuorumChild, offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
  child.begin();
  try {
    return child.driver.readInto(offset, target, options);
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Counts `child` as pending and starts `start` on its driver; a driver whose method throws instead
 * of rejecting fails the same way. ({@link issue} and {@link issueRead} spell this out: they run
 * on every request, and this takes a closure.)
 */
export function started<T>(child: QuorumChild, start: (driver: BlockDriver) => Promise<T>): Promise<T> {
  child.begin();
  try {
    return start(child.driver);
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Starts an advisory prefetch on one child (see {@link issue}). */
export function issueCache(child: QuorumChild, offset: number, length: number, options: IoOptions): Promise<void> {
  return started(child, (d) => d.cache(offset, length, options));
}

/** Starts a block-status query on one child; its answer lands in `answers[index]`. */
export function issueBlockStatus(
  child: QuorumChild,
  offset: number,
  length: number,
  options: IoOptions,
  answers: BlockExtent[][],
  index: number,
): Promise<void> {
  return started(child, (d) => d.blockStatus(offset, length, options).then((extents) => void (answers[index] = extents)));
}

/**
 * Waits for every request (one per child, in child order) and ends each child's pending count.
 * Returns undefined when all succeeded, else each child's error (undefined where it succeeded).
 * `Promise.all` attaches a handler to every request at once, so a child failing while an earlier
 * one is still running is never an unhandled rejection; only on a failure are the requests
 * walked one by one (each already settled or handled) to collect every error.
 */
export async function settleAll(kids: readonly QuorumChild[], pending: readonly Promise<unknown>[]): Promise<(BlockError | undefined)[] | undefined> {
  try {
    await Promise.all(pending);
  } catch {
    return collectErrors(kids, pending);
  }
  for (let i = 0; i < pending.length; i++) kids[i].end();
  return undefined;
}

/**
 * Waits for every request one by one and ends each child's pending count; each child's error
 * (undefined where it succeeded). For requests already known to include a failure.
 */
export async function collectErrors(kids: readonly QuorumChild[], pending: readonly Promise<unknown>[]): Promise<(BlockError | undefined)[]> {
  const errors = new Array<BlockError | undefined>(pending.length).fill(undefined);
  for (let i = 0; i < pending.length; i++) {
    try {
      await pending[i];
    } catch (err) {
      errors[i] = toBlockError(err);
    } finally {
      kids[i].end();
    }
  }
  return errors;
}
