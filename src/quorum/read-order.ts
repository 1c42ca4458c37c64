/**
 * The order in which a fifo-style read tries children. All three patterns fall back the same way:
 * on failure the next child in the order is tried, until one succeeds or every child has failed.
 */
import type { QuorumChild } from './child.js';
import type { ReadPattern } from './vote.js';

/**
 * Child indexes in try order.
 * - fifo: 0, 1, 2, … (the first child is preferred, e.g. the local disk).
 * - round-robin: starts one child further on each read (`turn` counts reads), then wraps around.
 * - least-pending: fewest requests in flight first; ties by child index (MD RAID1 / DRBD style).
 */
export function readOrder(pattern: Exclude<ReadPattern, 'quorum'>, children: readonly QuorumChild[], turn: number): number[] {
  const n = children.length;
  const indexes = Array.from({ length: n }, (_, i) => i);
  if (pattern === 'round-robin') {
    const start = turn % n;
    return indexes.map((i) => (start + i) % n);
  }
  if (pattern === 'least-pending') {
    const pending = children.map((c) => c.pending);
    return indexes.sort((a, b) => pending[a] - pending[b] || a - b);
  }
  return indexes;
}
