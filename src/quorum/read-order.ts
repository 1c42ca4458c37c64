/**
 * The order in which a fifo-style read tries children. All three patterns fall back the same way:
 * on failure the next child in the order is tried, until one succeeds or every child has failed.
 * The first child is chosen without building the order, so a read that succeeds at once costs
 * no array; the rest of the order is worked out only when that child fails.
 */
import type { QuorumChild } from './child.js';
import type { ReadPattern } from './vote.js';

/** The fifo-style patterns. */
export type InOrderPattern = Exclude<ReadPattern, 'quorum'>;

/**
 * The child a read tries first.
 * - fifo: child 0 (the first child is preferred, e.g. the local disk).
 * - round-robin: child `turn mod N` (`turn` counts reads).
 * - least-pending: the fewest requests in flight; ties to the lowest index (MD RAID1 / DRBD style).
 */
export function firstChild(pattern: InOrderPattern, children: readonly QuorumChild[], turn: number): number {
  if (pattern === 'fifo') return 0;
  if (pattern === 'round-robin') return turn % children.length;
  let best = 0;
  for (let i = 1; i < children.length; i++) if (children[i].pending < children[best].pending) best = i;
  return best;
}

/**
 * Every child index in try order, starting with `first`. fifo continues 1, 2, …; round-robin
 * wraps around from `first`; least-pending takes the rest by fewest requests in flight *now*
 * (ties by index), since the failure of the first child may have changed who is least busy.
 */
export function readOrder(pattern: InOrderPattern, children: readonly QuorumChild[], first: number): number[] {
  const n = children.length;
  if (pattern !== 'least-pending') return Array.from({ length: n }, (_, i) => (first + i) % n);
  const rest = Array.from({ length: n }, (_, i) => i).filter((i) => i !== first);
  const pending = children.map((c) => c.pending);
  rest.sort((a, b) => pending[a] - pending[b] || a - b);
  return [first, ...rest];
}
