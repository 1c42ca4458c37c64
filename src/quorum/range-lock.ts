/**
 * A range lock: keeps conflicting requests on overlapping byte ranges in arrival order.
 *
 * Each child of a quorum completes requests in its own order, so two overlapping writes sent to
 * every child at once can land as A-then-B on one replica and B-then-A on another, and the replicas
 * silently differ. DRBD avoids this with its conflicting-write handling; blockgraph does it here: a
 * request that overlaps an earlier conflicting one (still waiting or in flight) is held until every
 * such request has finished on all children. Requests that overlap nothing go out at once.
 *
 * Claims are `exclusive` (writes, write-zeroes, discards) or `shared` (voting reads, and addChild's
 * whole-device barrier). Shared claims do not conflict with each other; every other pair that
 * overlaps does. A claim waits for *every* earlier conflicting claim, not only the latest, so order
 * holds without chains and a cancelled claim can simply leave.
 *
 * Cost when nothing overlaps: one small record per claim and a scan of the claims in flight.
 */
import { abortCode } from '../abort-code.js';
import { BlockError, type BlockErrorDetails } from '../errors.js';

/** One claim on a range; see {@link RangeLock.acquire}. */
export class RangeClaim {
  /** Earlier conflicting claims not yet released. The claim is granted when this is 0. */
  blockers = 0;
  /** Later claims waiting for this one (allocated only when one waits). */
  dependents: RangeClaim[] | undefined;
  /** Wakes a waiting claim; cleared once it is granted or gives up. */
  wake: (() => void) | undefined;
  prev: RangeClaim | undefined;
  next: RangeClaim | undefined;
  linked = true;

  constructor(
    readonly offset: number,
    readonly end: number,
    readonly shared: boolean,
  ) {}
}

/** An ordered set of claims on byte ranges. */
export class RangeLock {
  #head: RangeClaim | undefined;
  #tail: RangeClaim | undefined;
  #count = 0;

  /** Claims currently registered (granted or waiting). */
  get size(): number {
    return this.#count;
  }

  /**
   * Registers a claim on [offset, end). It is granted at once when `blockers` is 0; otherwise call
   * {@link RangeLock.wait}. Either way, {@link RangeLock.release} it exactly once.
   */
  acquire(offset: number, end: number, shared: boolean): RangeClaim {
    const claim = new RangeClaim(offset, end, shared);
    for (let c = this.#head; c !== undefined; c = c.next) {
      if (c.offset < end && offset < c.end && !(shared && c.shared)) {
        claim.blockers++;
        (c.dependents ??= []).push(claim);
      }
    }
    claim.prev = this.#tail;
    if (this.#tail === undefined) this.#head = claim;
    else this.#tail.next = claim;
    this.#tail = claim;
    this.#count++;
    return claim;
  }

  /**
   * Resolves once the claim is granted. An abort while waiting rejects with ECANCELED; the claim
   * must still be released (which then lets later claims go without it).
   */
  wait(claim: RangeClaim, signal: AbortSignal | undefined, details: BlockErrorDetails): Promise<void> {
    if (claim.blockers === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const cancelled = (): BlockError =>
        new BlockError(abortCode(signal), `${details.driver ?? 'quorum'}: ${details.op ?? 'request'} aborted while waiting for an overlapping request`, {
          cause: signal?.reason,
          details,
        });
      if (signal?.aborted === true) {
        reject(cancelled());
        return;
      }
      const onAbort = (): void => {
        claim.wake = undefined;
        reject(cancelled());
      };
      claim.wake = () => {
        claim.wake = undefined;
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Removes a claim, granted or not; later claims that waited only for it go ahead. */
  release(claim: RangeClaim): void {
    if (!claim.linked) return;
    claim.linked = false;
    claim.wake = undefined;
    if (claim.prev === undefined) this.#head = claim.next;
    else claim.prev.next = claim.next;
    if (claim.next === undefined) this.#tail = claim.prev;
    else claim.next.prev = claim.prev;
    claim.prev = claim.next = undefined;
    this.#count--;
    const dependents = claim.dependents;
    if (dependents === undefined) return;
    claim.dependents = undefined;
    for (const d of dependents) if (--d.blockers === 0) d.wake?.();
  }
}
