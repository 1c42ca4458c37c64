/**
 * Zero-copy voting reads: instead of reading every child into a buffer of its own, a voting read
 * borrows each child's memory (`leaseRead`), compares the views where they lie, and copies only the
 * winner into the caller's buffer. Children that adopted the same written buffer (see
 * {@link sharedCopy}) lend the very same memory, which is equal without a byte compared.
 */
import { toBlockError, type BlockError } from '../errors.js';
import type { IoOptions, ReadLease, WriteOptions } from '../types.js';
import { copyInPieces } from '../buffers/copy.js';
import type { BufferPool } from '../buffers/pool.js';
import type { QuorumChild } from './child.js';
import { started } from './fan-out.js';

/**
 * Writes at least this long are copied once by the quorum and handed to every child as
 * `immutable`; below it the extra allocation costs more than the copies it can save.
 */
export const ADOPT_MIN_BYTES = 64 * 1024;

/** What every child lent, or how it failed (each array in child order). */
export interface LeasedRead {
  /** The lease of each child that lent; undefined where it failed. */
  readonly leases: (ReadLease | undefined)[];
  /** Undefined when every child lent, else each child's error (undefined where it lent). */
  readonly errors: (BlockError | undefined)[] | undefined;
}

/**
 * Asks every child for a lease of the range. Resolves undefined — having released whatever was
 * lent — as soon as one child declines (resolves undefined), since the vote then needs copies
 * anyway; a failure to lease counts as that child's read failure. Each child is pending meanwhile.
 */
export async function leaseAll(kids: readonly QuorumChild[], offset: number, length: number, options: IoOptions): Promise<LeasedRead | undefined> {
  const n = kids.length;
  const pending = new Array<Promise<ReadLease | undefined>>(n);
  for (let i = 0; i < n; i++) pending[i] = issueLease(kids[i], offset, length, options);
  const settled = await Promise.allSettled(pending);
  const leases = new Array<ReadLease | undefined>(n);
  let errors: (BlockError | undefined)[] | undefined;
  let declined = false;
  for (let i = 0; i < n; i++) {
    kids[i].end();
    const s = settled[i];
    if (s.status === 'rejected') (errors ??= new Array<BlockError | undefined>(n).fill(undefined))[i] = toBlockError(s.reason);
    else if (s.value === undefined) declined = true;
    else leases[i] = s.value;
  }
  if (!declined) return { leases, errors };
  releaseAll(leases);
  return undefined;
}

function issueLease(child: QuorumChild, offset: number, length: number, options: IoOptions): Promise<ReadLease | undefined> {
  return started(child, (d) => d.leaseRead(offset, length, options));
}

/** Ends every lease (each release is idempotent, so this may run more than once). */
export function releaseAll(leases: readonly (ReadLease | undefined)[]): void {
  for (const lease of leases) lease?.release();
}

/**
 * Whether two view lists of the same total length hold the same bytes. The lists may be cut at
 * different places; pieces that are the same memory are equal without being compared.
 */
export function sameBytes(a: readonly Uint8Array[], b: readonly Uint8Array[]): boolean {
  let i = 0;
  let j = 0;
  let at = 0; // position inside a[i]
  let bt = 0; // position inside b[j]
  while (i < a.length && j < b.length) {
    const x = a[i];
    const y = b[j];
    const n = Math.min(x.length - at, y.length - bt);
    if (n > 0 && !(x.buffer === y.buffer && x.byteOffset + at === y.byteOffset + bt)) {
      const xs = at === 0 && n === x.length ? x : x.subarray(at, at + n);
      const ys = bt === 0 && n === y.length ? y : y.subarray(bt, bt + n);
      if (Buffer.compare(xs, ys) !== 0) return false;
    }
    at += n;
    bt += n;
    if (at === x.length) {
      i++;
      at = 0;
    }
    if (bt === y.length) {
      j++;
      bt = 0;
    }
  }
  return true;
}

/** Copies views, in order, to the start of `target`. */
export function copyViews(views: readonly Uint8Array[], target: Uint8Array): void {
  let at = 0;
  for (const v of views) {
    copyInPieces(target, v, at);
    at += v.length;
  }
}

/** Options of a shared write: the children may keep the data (see {@link sharedCopy}). */
export const IMMUTABLE: WriteOptions = Object.freeze({ immutable: true });
export const IMMUTABLE_FUA: WriteOptions = Object.freeze({ immutable: true, fua: true });

/**
 * The copy a large write sends to its children instead of the caller's buffer, or undefined when
 * it goes as it is. A large write is copied once into a buffer from the quorum's pool and sent as
 * `immutable` (IMMUTABLE / IMMUTABLE_FUA), so children that adopt buffers (MemoryDriver) keep
 * that one copy — shared by all of them — instead of copying it each; children that ignore the
 * hint copy as before (see QuorumOptions.shareWrites). The quorum gives the copy back to the pool
 * once every child settled; it is reused when no adopting child holds it any more. A caller's
 * own `immutable` buffer is sent as it is.
 */
export function sharedCopy(pool: BufferPool, data: Uint8Array, sent: WriteOptions, children: number): Uint8Array | undefined {
  if (sent.immutable === true || children < 2 || data.length < ADOPT_MIN_BYTES) return undefined;
  // A view of exactly the write's length (the pool's buffer may be a bin larger); holds count per
  // ArrayBuffer, so giving back the view ends the quorum's hold on the whole.
  const whole = pool.take(data.length);
  const copy = whole.length === data.length ? whole : whole.subarray(0, data.length);
  copyInPieces(copy, data);
  return copy;
}
