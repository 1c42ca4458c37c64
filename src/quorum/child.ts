/**
 * Per-child state of a quorum. Kept in one small record so later features (a broken flag, a dirty
 * bitmap for resynchronisation) have an obvious home.
 */
import type { BlockDriver } from '../driver.js';

/** One child of a quorum: its stable name, its driver, and the requests the quorum has in flight on it. */
export class QuorumChild {
  /** Requests this quorum issued to the child that have not settled (reads, writes, rewrites…). */
  #pending = 0;
  #idle: (() => void)[] = [];

  constructor(
    /** Stable name, `children.<n>`; never reused while the quorum lives. */
    readonly name: string,
    readonly driver: BlockDriver,
  ) {}

  get pending(): number {
    return this.#pending;
  }

  /** Runs `op` on the child, counting it as pending until it settles. */
  run<T>(op: (driver: BlockDriver) => Promise<T>): Promise<T> {
    this.#pending++;
    let p: Promise<T>;
    try {
      p = op(this.driver);
    } catch (err) {
      this.#settled();
      return Promise.reject(err);
    }
    // Registered before the caller awaits `p`, so the count is down by the time the caller resumes.
    p.then(this.#settled, this.#settled);
    return p;
  }

  readonly #settled = (): void => {
    if (--this.#pending === 0 && this.#idle.length > 0) for (const wake of this.#idle.splice(0)) wake();
  };

  /** Resolves once nothing the quorum issued to this child is in flight. */
  idle(): Promise<void> {
    if (this.#pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}

/** A read-only view of a child for users (see {@link Quorum.members}). */
export interface QuorumMember {
  readonly name: string;
  readonly driver: BlockDriver;
  /** Requests in flight on this child at the time of the snapshot. */
  readonly pending: number;
}
