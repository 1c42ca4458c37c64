/**
 * How a quorum's capabilities and limits follow from its children's. Each rule keeps the quorum
 * honest towards callers (never promise what one child cannot do) without hiding what children
 * emulate on their own behind their public methods.
 */
import type { BlockDriver } from '../driver.js';
import type { BlockCapabilities, BlockLimits } from '../types.js';

/**
 * - canWrite, canMultiConn, canBlockStatus, canFastZero: every child must have it (a write refused
 *   by one replica, or an answer only some replicas can give, would break the vote).
 * - canFlush, canDiscard, canCache: any child (the others succeed without effect on their own).
 * - canFua, canZero: whenever the quorum can write. The quorum forwards FUA and write-zeroes to each
 *   child's public method, which honours them natively or emulates them itself (a flush, zero buffers).
 */
export function quorumCapabilities(children: readonly BlockDriver[]): BlockCapabilities {
  const caps = children.map((c) => c.capabilities);
  const all = (k: keyof BlockCapabilities): boolean => caps.every((c) => c[k]);
  const any = (k: keyof BlockCapabilities): boolean => caps.some((c) => c[k]);
  const canWrite = all('canWrite');
  return Object.freeze({
    canWrite,
    canFlush: any('canFlush'),
    canFua: canWrite,
    canDiscard: canWrite && any('canDiscard'),
    canZero: canWrite,
    canFastZero: canWrite && caps.every((c) => c.canZero && c.canFastZero),
    canBlockStatus: all('canBlockStatus'),
    canMultiConn: all('canMultiConn'),
    canCache: any('canCache'),
  });
}

/**
 * The strictest of the children's limits: the largest alignment and preferred size, the smallest
 * maximum block size and transfer, so every request the quorum accepts every child accepts whole.
 */
export function quorumLimits(children: readonly BlockDriver[]): BlockLimits {
  const limits = children.map((c) => c.limits);
  return Object.freeze({
    minBlockSize: Math.max(...limits.map((l) => l.minBlockSize)),
    preferredBlockSize: Math.max(...limits.map((l) => l.preferredBlockSize)),
    maxBlockSize: Math.min(...limits.map((l) => l.maxBlockSize)),
    maxTransfer: Math.min(...limits.map((l) => l.maxTransfer)),
  });
}
