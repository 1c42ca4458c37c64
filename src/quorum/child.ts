/**
 * Per-child state of a quorum. Kept in one small record so later features (a broken flag, a dirty
 * bitmap for resynchronisation) have an obvious home.
 */
import type { BlockDriver } from '../driver.js';

/** One child of a quorum: its stable name, its driver, and the requests the quorum has in flight on it. */
export class QuorumChild {
  /** Requests this quorum issued to the child that the quorum has not yet seen settle. */
  #pending = 0;
  #idle: (() => void)[] | undefined;
  /** Set by removeChild: requests decided on before the removal (a fallback, a repair) skip it. */
  removed = false;

  constructor(
    /** Stable name, `children.<n>`; never reused while the quorum lives. */
    readonly name: string,
    readonly driver: BlockDriver,
  ) {}

  get pending(): number {
    return this.#pending;
  }

  /**
   * Counts a request as pending. The quorum calls {@link QuorumChild.end} once it has observed
   * the request settle (a plain counter rather than a wrapper promise: no allocation per request).
   */
  begin(): void {
    this.#pending++;
  }

  end(): void {
    if (--this.#pending === 0 && this.#idle !== undefined) {
      const waiting = this.#idle;
      this.#idle = undefined;
      for (const wake of waiting) wake();
    }
  }

  /** Resolves once nothing the quorum issued to this child is in flight. */
  idle(): Promise<void> {
    if (this.#pending === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#idle ??= []).push(resolve));
  }
}

/** A read-only view of a child for users (see {@link Quorum.members}). */
export interface QuorumMember {
  readonly name: string;
  readonly driver: BlockDriver;
  /** Requests in flight on this child at the time of the snapshot. */
  readonly pending: number;
}
